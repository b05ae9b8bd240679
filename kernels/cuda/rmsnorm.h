// RMSNorm on the GPU: the same contract as kernels/cpu/rmsnorm.h (strided rows, dx written or
// accumulated, dw accumulated), on device pointers, fp32, asynchronous on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace hymba::cuda {

// x [rows, dim] at row stride ldx; y [rows, dim] at stride ldy; w [dim]; rstd [rows].
void rmsnorm_forward(float* y, int64_t ldy, float* rstd, const float* x, int64_t ldx,
                     const float* w, int64_t rows, int64_t dim, double eps, cudaStream_t stream);

// Floats of scratch rmsnorm_backward needs: per-block partial sums of dw, reduced in a fixed
// order afterwards so the result is the same on every run.
int64_t rmsnorm_backward_workspace(int64_t rows, int64_t dim);

// dx [rows, dim] (= or += when accumulate_dx); dw [dim] +=. workspace: the size above.
void rmsnorm_backward(float* dx, int64_t lddx, float* dw, const float* dy, int64_t lddy,
                      const float* x, int64_t ldx, const float* w, const float* rstd, int64_t rows,
                      int64_t dim, bool accumulate_dx, float* workspace, cudaStream_t stream);

}  // namespace hymba::cuda
