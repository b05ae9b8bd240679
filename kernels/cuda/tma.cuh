// Device side of TMA (kernels/cuda/tma.h): mbarriers in shared memory and tile copies that
// complete on them. One thread arms a barrier with the bytes it expects and issues the copies;
// every thread waits on the barrier's phase parity.
#pragma once

#include <cuda.h>

#include <cstdint>

namespace hymba::cuda {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// A barrier with one expected arrival per phase (the thread that arms it). Before any thread
// waits: fence_barrier_init, then a block-wide barrier.
__device__ __forceinline__ void mbarrier_init(uint64_t* bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(smem_address(bar)) : "memory");
}
// Makes initialised barriers visible to the async proxy (the TMA unit completes them).
__device__ __forceinline__ void fence_barrier_init() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// The arming thread's arrival: the phase completes once `bytes` more have landed.
__device__ __forceinline__ void mbarrier_arrive_expect(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_address(bar)), "r"(bytes)
               : "memory");
}
// Waits until the phase with this parity (0, 1, 0, ... for the barrier's 1st, 2nd, 3rd use) completed.
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, uint32_t parity) {
  uint32_t done;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_address(bar)), "r"(parity)
        : "memory");
  } while (!done);
}

// The tile of `map` at (column c0, row c1, outer c2) into shared memory at dst (1024-byte aligned
// for the 128-byte swizzle); its bytes complete on bar.
__device__ __forceinline__ void tma_load_tile(void* dst, const CUtensorMap& map, int c0, int c1, int c2, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], "
      "[%5];\n" ::"r"(smem_address(dst)),
      "l"(reinterpret_cast<uint64_t>(&map)), "r"(c0), "r"(c1), "r"(c2), "r"(smem_address(bar))
      : "memory");
}

}  // namespace hymba::cuda
