// Mamba-1 selective scan on the GPU: the same contract as kernels/cpu/selective_scan.h, on device
// pointers, asynchronous on `stream`:
//   Δ[t,e]   = softplus(delta[t,e] + dt_bias[e])          (softplus(x) = x for x > 20)
//   A[e,n]   = −exp(A_log[e,n])
//   h[t,e,n] = exp(Δ[t,e]·A[e,n]) · h[t−1,e,n] + Δ[t,e] · Bm[t,n] · u[t,e]     (h[−1] = 0)
//   y[t,e]   = Σ_n Cm[t,n] · h[t,e,n] + D[e] · u[t,e]
//   out[t,e] = y[t,e] · silu(z[t,e])
// per batch row b; Bm and Cm are shared by all E channels of a batch row and token.
// T is the activation type (float or __nv_bfloat16); dt_bias, A_log, D and their gradients are
// float. All arithmetic is fp32; each T output is rounded once. N (the state size) is 0..32.
// v1 of the fast path (the .cu says how): a group of 16 or 32 lanes per (b, e) channel, one state
// per lane, tokens staged through shared memory 64 at a time; the backward recomputes the states
// from 64-token checkpoints. Still sequential over the tokens of a channel: a chunked scan over
// the sequence is the next step (docs/PERF.md).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cpu/selective_scan.h"  // ScanShape

namespace hymba::cuda {

using cpu::ScanShape;

// u, delta [B, S, E] contiguous; z [B, S, E] at token stride ldz (>= E); Bm, Cm [B, S, N]
// contiguous; dt_bias [E]; A_log [E, N]; D [E]. out [B, S, E] contiguous (=). Nothing is saved:
// the backward recomputes the states from the inputs.
template <class T>
void selective_scan_forward(T* out, const T* u, const T* delta, const float* dt_bias,
                            const float* A_log, const T* Bm, const T* Cm, const float* D,
                            const T* z, int64_t ldz, const ScanShape& s, cudaStream_t stream);

// Floats of scratch selective_scan_backward needs: the states entering every 64-token chunk (the
// backward recomputes each chunk from them), the per-(b, e) partial sums of the parameter
// gradients and the per-block partial sums of dBm and dCm (a block holds 16 channels for
// N <= 16, 8 for N <= 32). The partial sums are added in a fixed order afterwards, so the result
// is the same on every run. B·E·N·(ceil(S/64) + 1) + 2·B·E + 2·B·S·N·ceil(E/16) floats for
// N <= 16 (ceil(E/8) for N > 16): ~126 MB at B=2, S=2176, E=3200, N=16.
int64_t selective_scan_backward_workspace(const ScanShape& s);

// Written (=): du, ddelta [B, S, E] contiguous; dz [B, S, E] at token stride lddz (>= E);
// dBm, dCm [B, S, N] contiguous. Accumulated (+=): ddt_bias [E], dA_log [E, N], dD [E].
// dout [B, S, E] contiguous; the other inputs as in the forward. workspace: the size above. The
// outputs must not overlap the inputs.
template <class T>
void selective_scan_backward(T* du, T* ddelta, T* dz, int64_t lddz, T* dBm, T* dCm,
                             float* ddt_bias, float* dA_log, float* dD, const T* dout, const T* u,
                             const T* delta, const float* dt_bias, const float* A_log,
                             const T* Bm, const T* Cm, const float* D, const T* z, int64_t ldz,
                             const ScanShape& s, float* workspace, cudaStream_t stream);

}  // namespace hymba::cuda
