// The fixed-order column sums that turn a kernel's per-block partial rows into one row: the
// deterministic second half of the RMSNorm backward's dw and the conv backward's dw and dbias.
#pragma once

#include <cstdint>

namespace hymba::cuda {

// A column-sum block is kColumnSumColumns × kColumnSumSlices threads: x picks the column, y the
// slice. 32 slices keep 32 loads of a column in flight (one thread a column left long dependent
// chains in 30-60 blocks at the model's sizes; 8 slices too few loads in flight).
constexpr int kColumnSumColumns = 32, kColumnSumSlices = 32;

// Σ_p partial[p · ld + column] over p < parts, in a fixed order: thread (x, s) of the block adds
// the parts p ≡ s (mod 32) in increasing p, then the 32 slice sums are added in slice order, so
// the result is the same every run. Called by every thread of the block (it has a barrier); the
// sum is returned to the threads with threadIdx.y == 0; `valid` false marks a column past the end
// (its threads load nothing).
__device__ __forceinline__ float column_sum(const float* partial, int64_t parts, int64_t ld, int64_t column,
                                            bool valid) {
  __shared__ float slice_sum[kColumnSumSlices][kColumnSumColumns + 1];  // padded against bank conflicts
  float s = 0.0f;
  if (valid) {
#pragma unroll 4
    for (int64_t p = threadIdx.y; p < parts; p += kColumnSumSlices) s += partial[p * ld + column];
  }
  slice_sum[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0) {
    for (int y = 1; y < kColumnSumSlices; ++y) s += slice_sum[y][threadIdx.x];
  }
  return s;
}

// The launch shape column_sum expects for `columns` columns.
inline dim3 column_sum_grid(int64_t columns) {
  return dim3(unsigned((columns + kColumnSumColumns - 1) / kColumnSumColumns));
}
inline dim3 column_sum_block() { return dim3(kColumnSumColumns, kColumnSumSlices); }

}  // namespace hymba::cuda
