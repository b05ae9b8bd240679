// Small elementwise helpers the GPU model uses where the CPU model has plain loops. All on device
// pointers, fp32 arithmetic, asynchronous on `stream`. (Zero fills are cudaMemsetAsync: no kernel.)
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hymba::cuda {

// dst [rows, cols] at row stride lddst = src [rows, cols] at row stride ldsrc (a strided 2-D copy;
// the two must not overlap).
template <class T>
void copy_rows(T* dst, int64_t lddst, const T* src, int64_t ldsrc, int64_t rows, int64_t cols,
               cudaStream_t stream);

// dst, src [n]: dst = Dst(src), round to nearest even for float → bf16. Instantiated for
// <bf16, float> (the bf16 copy of the weights), <float, bf16> and <float, float>.
template <class Dst, class Src>
void cast(Dst* dst, const Src* src, int64_t n, cudaStream_t stream);

}  // namespace hymba::cuda
