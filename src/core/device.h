// What accelerator this process can use. Built without CUDA, or run on a machine without an
// NVIDIA driver (CI, laptops), it reports none and everything runs on the CPU.
#pragma once

#include <string>

namespace hymba {

#ifdef HYMBA_HAVE_CUDA
inline constexpr bool kHaveCuda = true;
#else
inline constexpr bool kHaveCuda = false;
#endif

// The dense bf16 tensor-core peak of an H100 SXM, the figure MFU is reported against.
inline constexpr double kPeakFlops = 989e12;
inline constexpr const char* kPeakFlopsName = "989 TFLOP/s, H100 SXM dense bf16";

int cuda_device_count();
std::string cuda_device_name(int device);  // "" when there is none

// Whether to run on GPU 0 for a device setting of "auto" (when one is visible and the build has
// CUDA), "cpu" or "cuda". "cuda" without a usable GPU is an Error naming `what` (the setting's
// key or option) and the reason.
bool use_gpu(const std::string& device, const std::string& what);

// Device memory of the current GPU: bytes in use (by every process; the training process is
// normally alone) and the total. {0, 0} without a GPU.
struct GpuMemory {
  double used = 0, total = 0;
};
GpuMemory gpu_memory();

}  // namespace hymba
