// Causal depthwise conv1d + bias + SiLU on the GPU: the same contract as kernels/cpu/conv_silu.h,
// on device pointers, asynchronous on `stream`:
//   pre[b,t,e] = bias[e] + Σ_{k<K} w[e,k] · x[b, t−(K−1)+k, e]      (x at t < 0 is 0)
//   u = silu(pre)
// T is the activation type (float or __nv_bfloat16); the weights, the bias and their gradients
// are float. All arithmetic is fp32; u is rounded to T once. pre is not stored: the backward
// computes it again, the same fp32 sum in the same order, from the x it reads anyway for dw
// (one [B, S, E] tensor less to write, read and keep). K is 1..8 (4 in Hymba).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hymba::cuda {

// x [B, S, E] at token stride ldx (>= E); u [B, S, E] contiguous (=); w [E, K]; bias [E].
template <class T>
void conv_silu_forward(T* u, const T* x, int64_t ldx, const float* w, const float* bias, int64_t B,
                       int64_t S, int64_t E, int64_t K, cudaStream_t stream);

// Floats of scratch conv_silu_backward needs: the partial sums of dw and dbias of every block of
// tokens, [B · ceil(S / 16), K + 1, E], summed in a fixed order afterwards so the result is the
// same on every run.
int64_t conv_silu_backward_workspace(int64_t B, int64_t S, int64_t E, int64_t K);

// du [B, S, E] contiguous; x [B, S, E] at stride ldx, w [E, K] and bias [E] as given to the
// forward. dx [B, S, E] at token stride lddx (>= E) (=); dw [E, K] +=; dbias [E] +=. workspace:
// the size above. dx must not overlap the inputs.
template <class T>
void conv_silu_backward(T* dx, int64_t lddx, float* dw, float* dbias, const T* du, const T* x,
                        int64_t ldx, const float* w, const float* bias, int64_t B, int64_t S,
                        int64_t E, int64_t K, float* workspace, cudaStream_t stream);

}  // namespace hymba::cuda
