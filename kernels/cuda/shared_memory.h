// Host side of a kernel's dynamic shared memory.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

#include "core/cuda_check.h"

namespace hymba::cuda {

// A launch whose dynamic shared memory, with the kernel's static shared memory, is above the
// default 48 KiB must be opted into, per kernel, first (the limit counts both: a kernel with 1 KiB
// static failed its launch with exactly 48 KiB dynamic); below that nothing needs setting.
template <class Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  if (bytes == 0) return;
  cudaFuncAttributes attributes{};
  HYMBA_CUDA_CHECK(cudaFuncGetAttributes(&attributes, kernel));
  if (attributes.sharedSizeBytes + bytes > 48 * 1024) {
    HYMBA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  }
}

}  // namespace hymba::cuda
