// Asynchronous global -> shared copies (cp.async) that do not pass through registers, so a thread
// can have many loads in flight at no register cost: the scan's staging of the next sub-chunk,
// the conv kernels' token windows, the attention backward's lse and D rows and the RMSNorm
// backward's next row tile. Each thread waits for its own copies only (copy_wait); a block that
// reads another thread's copies needs a barrier after the wait as well.
#pragma once

#include <cstring>

namespace hymba::cuda {

// kBytes (4, 8 or 16) global -> shared without passing through registers (zero-filled when !valid:
// src is then not read), so the next sub-chunk's loads cost no registers while the current one
// is computed. copy_wait: this thread's copies have landed and are visible to it.
template <int kBytes>
__device__ __forceinline__ void copy_async(void* dst, const void* src, bool valid) {
  static_assert(kBytes == 4 || kBytes == 8 || kBytes == 16, "cp.async copies 4, 8 or 16 bytes");
#ifdef __CUDA_ARCH__
  const unsigned d = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  if constexpr (kBytes == 16) {  // .cg (L2 only) exists for 16 bytes alone
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
  } else {
    asm volatile("cp.async.ca.shared.global [%0], [%1], %2, %3;\n" ::"r"(d), "l"(src),
                 "n"(kBytes), "r"(valid ? kBytes : 0)
                 : "memory");
  }
#else
  if (valid) {
    memcpy(dst, src, kBytes);
  } else {
    memset(dst, 0, kBytes);
  }
#endif
}

__device__ __forceinline__ void copy_commit() {
#ifdef __CUDA_ARCH__
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void copy_wait() {
#ifdef __CUDA_ARCH__
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// This thread's copies have landed but for those of its kPending most recent commits (a copy
// pipeline kPending groups deep: wait for the oldest while the newer stay in flight).
template <int kPending>
__device__ __forceinline__ void copy_wait_prior() {
#ifdef __CUDA_ARCH__
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
#endif
}

}  // namespace hymba::cuda
