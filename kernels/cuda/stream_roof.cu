#include "cuda/stream_roof.h"

#include "core/cuda_check.h"
#include "core/error.h"

namespace hymba::cuda {

namespace {

constexpr int kThreads = 256, kVectorsPerThread = 4;  // 4 loads a tensor in flight a thread

template <int kReads, int kWrites>
struct Streams {
  const uint4* in[kReads];
  uint4* out[kWrites];
};

__device__ __forceinline__ uint4 add(uint4 a, uint4 b) { return make_uint4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w); }

// Block b covers vectors [b·kThreads·4, +kThreads·4), thread t those ≡ t (mod kThreads): every
// load and store of a warp is 512 contiguous bytes.
template <int kReads, int kWrites>
__global__ void __launch_bounds__(kThreads) stream_roof_kernel(Streams<kReads, kWrites> s, int64_t vectors) {
  const int64_t base = int64_t(blockIdx.x) * kThreads * kVectorsPerThread + threadIdx.x;
  uint4 v[kVectorsPerThread];
#pragma unroll
  for (int k = 0; k < kVectorsPerThread; ++k) {
    const int64_t i = base + k * kThreads;
    v[k] = make_uint4(0, 0, 0, 0);
    if (i < vectors) {
#pragma unroll
      for (int r = 0; r < kReads; ++r) v[k] = add(v[k], s.in[r][i]);
    }
  }
#pragma unroll
  for (int k = 0; k < kVectorsPerThread; ++k) {
    const int64_t i = base + k * kThreads;
    if (i < vectors) {
#pragma unroll
      for (int w = 0; w < kWrites; ++w) s.out[w][i] = v[k];
    }
  }
}

template <int kReads, int kWrites>
void launch(void* const* out, const void* const* in, int64_t vectors, cudaStream_t stream) {
  Streams<kReads, kWrites> s{};
  for (int r = 0; r < kReads; ++r) s.in[r] = static_cast<const uint4*>(in[r]);
  for (int w = 0; w < kWrites; ++w) s.out[w] = static_cast<uint4*>(out[w]);
  const int64_t per_block = int64_t(kThreads) * kVectorsPerThread;
  stream_roof_kernel<kReads, kWrites><<<unsigned((vectors + per_block - 1) / per_block), kThreads, 0, stream>>>(s, vectors);
  HYMBA_CUDA_CHECK_LAUNCH();
}

}  // namespace

void stream_roof(void* const* out, int writes, const void* const* in, int reads, int64_t vectors, cudaStream_t stream) {
  if (reads < 1 || reads > 3 || writes < 1 || writes > 2) {
    fail("stream_roof: reads must be 1-3 and writes 1-2, got ", reads, " and ", writes);
  }
  if (vectors <= 0) return;
  switch (reads * 4 + writes) {
    case 1 * 4 + 1: return launch<1, 1>(out, in, vectors, stream);
    case 1 * 4 + 2: return launch<1, 2>(out, in, vectors, stream);
    case 2 * 4 + 1: return launch<2, 1>(out, in, vectors, stream);
    case 2 * 4 + 2: return launch<2, 2>(out, in, vectors, stream);
    case 3 * 4 + 1: return launch<3, 1>(out, in, vectors, stream);
    case 3 * 4 + 2: return launch<3, 2>(out, in, vectors, stream);
    default: HYMBA_ASSERT(false);
  }
}

}  // namespace hymba::cuda
