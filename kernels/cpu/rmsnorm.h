// RMSNorm (HYMBA_SPEC §1): y = w ⊙ x / sqrt(mean(x²) + eps), over the last `dim` elements of
// each row. No bias, no mean subtraction.
#pragma once

#include <cstdint>

namespace hymba::cpu {

// x [rows, dim] at row stride ldx; y [rows, dim] at row stride ldy; w [dim];
// rstd [rows] receives 1/sqrt(mean(x²)+eps) for the backward.
template <class T>
void rmsnorm_forward(T* y, int64_t ldy, T* rstd, const T* x, int64_t ldx, const T* w,
                     int64_t rows, int64_t dim, double eps);

// dx [rows, dim] (= or += when accumulate_dx); dw [dim] +=.
// dx = rstd · (w⊙dy − x̂ · mean(w⊙dy ⊙ x̂)) with x̂ = x·rstd.
template <class T>
void rmsnorm_backward(T* dx, int64_t lddx, T* dw, const T* dy, int64_t lddy, const T* x,
                      int64_t ldx, const T* w, const T* rstd, int64_t rows, int64_t dim,
                      bool accumulate_dx = false);

}  // namespace hymba::cpu
