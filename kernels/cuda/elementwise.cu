// Elementwise helpers. All memory bound: values move in packs of K (16 bytes of the widest type)
// when the pointers allow it, in a grid-stride loop over the packs and then the < K leftovers.
#include "cuda/elementwise.h"

#include <algorithm>
#include <cstdint>

#include "core/cuda_check.h"
#include "cuda/alignment.h"
#include "cuda/dtype.cuh"

namespace hymba::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // enough to fill an H100; larger sizes loop in the grid

// An opaque word of W bytes: copy_rows moves bytes, whatever T is.
template <int W>
struct alignas(W) Word {
  unsigned char b[W];
};

__device__ __forceinline__ int64_t first_index() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

// Blocks for `work` threads' worth of items (at least one, so that leftovers get a thread).
unsigned blocks_for(int64_t work) {
  return unsigned(std::min((std::max<int64_t>(work, 1) + kThreads - 1) / kThreads, kMaxBlocks));
}

// dst[r, c] = src[r, c] over words: cols, ld* and the pointers are counted in words of W bytes.
template <int W>
__global__ void copy_rows_kernel(Word<W>* dst, int64_t lddst, const Word<W>* src, int64_t ldsrc,
                                 int64_t rows, int64_t cols) {
  for (int64_t i = first_index(); i < rows * cols; i += grid_stride()) {
    const int64_t r = i / cols, c = i % cols;
    dst[r * lddst + c] = src[r * ldsrc + c];
  }
}

template <class Dst, class Src, int K>
__global__ void cast_kernel(Dst* dst, const Src* src, int64_t n) {
  const int64_t packs = n / K;
  for (int64_t i = first_index(); i < packs; i += grid_stride()) {
    const Pack<Src, K> sv = reinterpret_cast<const Pack<Src, K>*>(src)[i];
    Pack<Dst, K> dv;
#pragma unroll
    for (int k = 0; k < K; ++k) dv.v[k] = from_float<Dst>(to_float(sv.v[k]));
    reinterpret_cast<Pack<Dst, K>*>(dst)[i] = dv;
  }
  for (int64_t i = packs * K + first_index(); i < n; i += grid_stride()) {
    dst[i] = from_float<Dst>(to_float(src[i]));
  }
}

template <int W>
void launch_copy_rows(void* dst, int64_t lddst_bytes, const void* src, int64_t ldsrc_bytes,
                      int64_t rows, int64_t cols_bytes, cudaStream_t stream) {
  copy_rows_kernel<W><<<blocks_for(rows * cols_bytes / W), kThreads, 0, stream>>>(
      static_cast<Word<W>*>(dst), lddst_bytes / W, static_cast<const Word<W>*>(src), ldsrc_bytes / W,
      rows, cols_bytes / W);
  HYMBA_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <class T>
void copy_rows(T* dst, int64_t lddst, const T* src, int64_t ldsrc, int64_t rows, int64_t cols,
               cudaStream_t stream) {
  if (rows == 0 || cols == 0) return;
  const int64_t sz = sizeof(T), lddst_bytes = lddst * sz, ldsrc_bytes = ldsrc * sz, cols_bytes = cols * sz;
  // The widest word that divides both pointers, both strides and the row length.
  const auto fits = [&](int64_t w) {
    return aligned(dst, w) && aligned(src, w) && lddst_bytes % w == 0 && ldsrc_bytes % w == 0 &&
           cols_bytes % w == 0;
  };
  if (fits(16)) {
    launch_copy_rows<16>(dst, lddst_bytes, src, ldsrc_bytes, rows, cols_bytes, stream);
  } else if (fits(8)) {
    launch_copy_rows<8>(dst, lddst_bytes, src, ldsrc_bytes, rows, cols_bytes, stream);
  } else if (fits(4)) {
    launch_copy_rows<4>(dst, lddst_bytes, src, ldsrc_bytes, rows, cols_bytes, stream);
  } else {
    launch_copy_rows<2>(dst, lddst_bytes, src, ldsrc_bytes, rows, cols_bytes, stream);
  }
}

template <class Dst, class Src>
void cast(Dst* dst, const Src* src, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int K = 4;  // 16 bytes of float, 8 of bf16
  if (aligned(dst, K * sizeof(Dst)) && aligned(src, K * sizeof(Src))) {
    cast_kernel<Dst, Src, K><<<blocks_for(n / K), kThreads, 0, stream>>>(dst, src, n);
  } else {
    cast_kernel<Dst, Src, 1><<<blocks_for(n), kThreads, 0, stream>>>(dst, src, n);
  }
  HYMBA_CUDA_CHECK_LAUNCH();
}

template void copy_rows<float>(float*, int64_t, const float*, int64_t, int64_t, int64_t, cudaStream_t);
template void copy_rows<bf16>(bf16*, int64_t, const bf16*, int64_t, int64_t, int64_t, cudaStream_t);
template void cast<bf16, float>(bf16*, const float*, int64_t, cudaStream_t);
template void cast<float, bf16>(float*, const bf16*, int64_t, cudaStream_t);
template void cast<float, float>(float*, const float*, int64_t, cudaStream_t);

}  // namespace hymba::cuda
