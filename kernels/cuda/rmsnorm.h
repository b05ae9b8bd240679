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

// x [rows, dim] at row stride ldx; y [rows, dim] at stride ldy; w [dim]; rstd [rows].
template <class T>
void rmsnorm_forward(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx, const float* w,
                     int64_t rows, int64_t dim, double eps, cudaStream_t stream);

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

}  // namespace hymba::cuda
