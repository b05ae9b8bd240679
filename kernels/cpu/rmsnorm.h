// RMSNorm (HYMBA_SPEC §1): y = w ⊙ x / sqrt(mean(x²) + eps), over the last `dim` elements of
// each row. No bias, no mean subtraction.
#pragma once

#include <cstdint>

namespace hymba::cpu {

// x [rows, dim] at row stride ldx; y [rows, dim] at row stride ldy; w [dim];
// rstd [rows] receives 1/sqrt(mean(x²)+eps) for the backward. With `average`, y is not
// overwritten but averaged with the norm: y = (y + w ⊙ x̂) · 0.5, the norm rounded to T first
// (the fusion of two branches: the first branch's norm writes y, the second averages into it).
template <class T>
void rmsnorm_forward(T* y, int64_t ldy, T* rstd, const T* x, int64_t ldx, const T* w,
                     int64_t rows, int64_t dim, double eps, bool average = false);

// dx [rows, dim] (= or += when accumulate_dx); dw [dim] +=.
// dx = rstd · (w⊙dy − x̂ · mean(w⊙dy ⊙ x̂)) with x̂ = x·rstd.
template <class T>
void rmsnorm_backward(T* dx, int64_t lddx, T* dw, const T* dy, int64_t lddy, const T* x,
                      int64_t ldx, const T* w, const T* rstd, int64_t rows, int64_t dim,
                      bool accumulate_dx = false);

// Tensor parallelism splits a row over ranks: each holds `dim` of its `full_dim` elements (and
// those elements of w), and the row statistics are sums over every rank's part. The norm then
// runs in two halves around an all-reduce of per-row sums [rows]:
//   forward:  rmsnorm_sum_squares → all-reduce → rmsnorm_forward_from_sums
//   backward: rmsnorm_backward_dots → all-reduce → rmsnorm_backward_from_dots
// With one rank (dim == full_dim) they compute what rmsnorm_forward / rmsnorm_backward do.

// sums [rows] = Σ x² over each row's dim elements.
template <class T>
void rmsnorm_sum_squares(T* sums, const T* x, int64_t ldx, int64_t rows, int64_t dim);
// The forward from the whole rows' sums of squares (`average` as rmsnorm_forward); rstd may
// alias sums.
template <class T>
void rmsnorm_forward_from_sums(T* y, int64_t ldy, T* rstd, const T* x, int64_t ldx, const T* w,
                               const T* sums, int64_t rows, int64_t dim, int64_t full_dim, double eps,
                               bool average = false);
// dots [rows] = Σ (w⊙dy) ⊙ x̂ over each row's dim elements.
template <class T>
void rmsnorm_backward_dots(T* dots, const T* dy, int64_t lddy, const T* x, int64_t ldx, const T* w,
                           const T* rstd, int64_t rows, int64_t dim);
// The backward from the whole rows' dots.
template <class T>
void rmsnorm_backward_from_dots(T* dx, int64_t lddx, T* dw, const T* dy, int64_t lddy, const T* x,
                                int64_t ldx, const T* w, const T* rstd, const T* dots, int64_t rows,
                                int64_t dim, int64_t full_dim, bool accumulate_dx = false);

}  // namespace hymba::cpu
