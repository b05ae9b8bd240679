// Host side of a kernel's dynamic shared memory.
#pragma once

#include <cstddef>

namespace hymba::cuda {

// A launch whose dynamic shared memory, with the kernel's static shared memory, is above the
// default 48 KiB must be opted into, per kernel and device, first (the limit counts both: a kernel
// with 1 KiB static failed its launch with exactly 48 KiB dynamic); below that nothing needs
// setting. The driver is asked once per (device, kernel) and again only for a larger size, since
// every launch of the scan, conv and attention kernels passes through here.
void allow_smem_bytes(const void* kernel, size_t bytes);

template <class Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  allow_smem_bytes(reinterpret_cast<const void*>(kernel), bytes);
}

}  // namespace hymba::cuda
