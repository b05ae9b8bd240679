#include "cuda/shared_memory.h"

#include <cuda_runtime_api.h>

#include <map>
#include <mutex>
#include <utility>

#include "core/cuda_check.h"

namespace hymba::cuda {

void allow_smem_bytes(const void* kernel, size_t bytes) {
  if (bytes == 0) return;
  int device = 0;
  HYMBA_CUDA_CHECK(cudaGetDevice(&device));
  // (device, kernel) -> the largest dynamic size already allowed
  static std::map<std::pair<int, const void*>, size_t> allowed;
  static std::mutex mutex;
  const std::lock_guard<std::mutex> lock(mutex);
  size_t& done = allowed[{device, kernel}];
  if (bytes <= done) return;
  cudaFuncAttributes attributes{};
  HYMBA_CUDA_CHECK(cudaFuncGetAttributes(&attributes, kernel));
  if (attributes.sharedSizeBytes + bytes > 48 * 1024) {
    HYMBA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  }
  done = bytes;
}

}  // namespace hymba::cuda
