// Small elementwise helpers of the model (strided copies), with the same contracts as
// kernels/cuda/elementwise.h. Header-only: each is one loop.
#pragma once

#include <algorithm>
#include <cstdint>

#include "cpu/parallel.h"

namespace hymba::cpu {

// dst [rows, cols] at row stride lddst = src [rows, cols] at row stride ldsrc
template <class T>
void copy_rows(T* dst, int64_t lddst, const T* src, int64_t ldsrc, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) std::copy(src + r * ldsrc, src + r * ldsrc + cols, dst + r * lddst);
}

}  // namespace hymba::cpu
