// Small elementwise helpers of the model (the fusion average, strided copies), with the same
// contracts as kernels/cuda/elementwise.h. Header-only: each is one loop.
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

// a = (a + b) · 0.5 over n values
template <class T>
void average_into(T* a, const T* b, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i) a[i] = (a[i] + b[i]) * T(0.5);
}

}  // namespace hymba::cpu
