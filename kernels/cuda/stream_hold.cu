#include "cuda/stream_hold.h"

#include <cstdint>

#include "core/cuda_check.h"

namespace hymba::cuda {

namespace {

__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// One thread spins on the host's flag (host memory mapped into the device: every volatile read
// goes over the bus and sees the host's write).
__global__ void hold_kernel(volatile int* flags, uint64_t timeout_ns) {
  const uint64_t start = global_ns();
  while (flags[0] == 0) {
    if (global_ns() - start > timeout_ns) {
      flags[1] = 1;
      return;
    }
    __nanosleep(1000);
  }
}

}  // namespace

StreamHold::StreamHold() {
  void* host = nullptr;
  HYMBA_CUDA_CHECK(cudaHostAlloc(&host, 2 * sizeof(int), cudaHostAllocMapped));
  flags_ = static_cast<volatile int*>(host);
  flags_[0] = 1;  // nothing held
  flags_[1] = 0;
  void* device = nullptr;
  HYMBA_CUDA_CHECK(cudaHostGetDevicePointer(&device, host, 0));
  device_flags_ = static_cast<volatile int*>(device);
}

void StreamHold::hold(cudaStream_t stream, double timeout_ms) {
  flags_[0] = flags_[1] = 0;
  hold_kernel<<<1, 1, 0, stream>>>(device_flags_, uint64_t(timeout_ms * 1e6));
  HYMBA_CUDA_CHECK_LAUNCH();
}

StreamHold::~StreamHold() {
  release();
  // The kernel may still read the flag: wait for it before the memory goes (no check: a
  // destructor may run while an error unwinds).
  cudaDeviceSynchronize();
  cudaFreeHost(const_cast<int*>(flags_));
}

void StreamHold::release() { flags_[0] = 1; }

bool StreamHold::timed_out() const { return flags_[1] != 0; }

}  // namespace hymba::cuda
