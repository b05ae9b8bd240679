// RMSNorm on the GPU: the same contract as kernels/cpu/rmsnorm.h (strided rows, dx written or
// accumulated, dw accumulated), on device pointers, asynchronous on `stream`. T is the activation
// type, float or __nv_bfloat16: x, y, dy and dx are T; the weight w, its gradient dw and the
// statistics rstd are float in both. All arithmetic is fp32; y and dx are rounded to T once.
//
// Rows up to dim = 8192 wide (hymba::Error above). Speed: a row is held in registers and moved in
// 16-byte pieces when dim and every row stride are multiples of 16/sizeof(T) elements and every
// pointer (w included) is 16-byte aligned; other shapes (a column slice at an odd offset) take a
// path of one element per access, correct but slower. rows == 0 or dim == 0 does nothing.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hymba::cuda {

// x [rows, dim] at row stride ldx; y [rows, dim] at stride ldy; w [dim]; rstd [rows]. average:
// y = (y + norm) · 0.5 (the fusion of two branches, in one pass: kernels/cpu/rmsnorm.h).
template <class T>
void rmsnorm_forward(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx, const float* w,
                     int64_t rows, int64_t dim, double eps, cudaStream_t stream, bool average = false);

// Floats of scratch rmsnorm_backward needs: per-block partial sums of dw, reduced in a fixed
// order afterwards so the result is the same on every run. The same for both T, and it never
// decreases as rows or dim grow, so one buffer sized for the largest call serves the smaller.
int64_t rmsnorm_backward_workspace(int64_t rows, int64_t dim);

// dx [rows, dim] at stride lddx (= or += when accumulate_dx); dy [rows, dim] at stride lddy;
// x [rows, dim] at stride ldx; w [dim]; rstd [rows] from the forward; dw [dim] +=.
// workspace: the size above. Two launches (the rows, then the dw partials).
template <class T>
void rmsnorm_backward(T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy, const T* x,
                      int64_t ldx, const float* w, const float* rstd, int64_t rows, int64_t dim,
                      bool accumulate_dx, float* workspace, cudaStream_t stream);

// The split norm of tensor parallelism (kernels/cpu/rmsnorm.h): each rank holds `dim` of a row's
// `full_dim` elements (and those of w), and the row statistics are summed over the ranks between
// the halves:
//   forward:  rmsnorm_sum_squares → all-reduce of sums → rmsnorm_forward_from_sums
//   backward: rmsnorm_backward_dots → all-reduce of dots → rmsnorm_backward_from_dots
// The halves are the kernels above cut at the row sum, with their layouts and fp32 arithmetic,
// so with one rank (dim == full_dim) they give the whole norm's bits, provided they take the
// same path (16-byte packs or one element): the rule above, on the tensors each half touches
// (the sums half sees only x, the dots half not dx). dim 0 (a rank holding none of the row) is
// allowed: its sums and dots are 0, and the forward still writes rstd. Bounds: dim as above,
// dim ≤ full_dim ≤ INT_MAX, full_dim ≥ 1 (hymba::Error otherwise).

// sums [rows] = Σ x² over each row's dim elements; x [rows, dim] at stride ldx.
template <class T>
void rmsnorm_sum_squares(float* sums, const T* x, int64_t ldx, int64_t rows, int64_t dim, cudaStream_t stream);

// The forward from the whole rows' sums of squares sums [rows] (over full_dim elements): y, rstd,
// x, w and average as in rmsnorm_forward. rstd may alias sums.
template <class T>
void rmsnorm_forward_from_sums(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx, const float* w,
                               const float* sums, int64_t rows, int64_t dim, int64_t full_dim, double eps,
                               cudaStream_t stream, bool average = false);

// dots [rows] = Σ (w⊙dy) ⊙ x̂ over each row's dim elements, x̂ = x·rstd; dy, x, w, rstd as in
// rmsnorm_backward.
template <class T>
void rmsnorm_backward_dots(float* dots, const T* dy, int64_t lddy, const T* x, int64_t ldx, const float* w,
                           const float* rstd, int64_t rows, int64_t dim, cudaStream_t stream);

// The backward from the whole rows' dots [rows] (over full_dim elements): dx, dw and the rest as
// in rmsnorm_backward, workspace rmsnorm_backward_workspace(rows, dim). Two launches.
template <class T>
void rmsnorm_backward_from_dots(T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy, const T* x,
                                int64_t ldx, const float* w, const float* rstd, const float* dots, int64_t rows,
                                int64_t dim, int64_t full_dim, bool accumulate_dx, float* workspace,
                                cudaStream_t stream);

}  // namespace hymba::cuda
