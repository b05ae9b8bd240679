#include "core/device.h"

#include "core/error.h"

#ifdef HYMBA_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace hymba {

int cuda_device_count() {
#ifdef HYMBA_HAVE_CUDA
  int n = 0;
  // No driver or no device is not an error here: it means "use the CPU".
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later queries start clean
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

std::string cuda_device_name(int device) {
#ifdef HYMBA_HAVE_CUDA
  cudaDeviceProp prop{};
  if (device < cuda_device_count() && cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
    return prop.name;
  }
#else
  (void)device;
#endif
  return "";
}

bool use_gpu(const std::string& device, const std::string& what) {
  const int gpus = cuda_device_count();
  if (device == "cuda" && gpus == 0) {
    fail(what, ": cuda: ", kHaveCuda ? "no GPU is visible to this process" : "this build has no CUDA backend",
         "; use auto or cpu");
  }
  return device == "cuda" || (device == "auto" && gpus > 0);
}

GpuMemory gpu_memory() {
#ifdef HYMBA_HAVE_CUDA
  size_t free = 0, total = 0;
  if (cuda_device_count() > 0 && cudaMemGetInfo(&free, &total) == cudaSuccess) {
    return {double(total - free), double(total)};
  }
#endif
  return {};
}

}  // namespace hymba
