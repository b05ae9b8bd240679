// Softmax attention on the GPU: the same contract as kernels/cpu/attention.h (GQA, q/k head dim hd,
// value head dim vd, the global causal mask or the sliding-window + meta-token mask of
// HYMBA_SPEC §2.5, scale 1/sqrt(hd)), on device pointers, asynchronous on `stream`. T is the
// activation type (float or bf16); lse is always float. Arithmetic is fp32.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cpu/attention.h"

namespace hymba::cuda {

using cpu::AttentionShape;

// Largest hd and vd the kernels take (each lane keeps ceil(dim / 32) accumulators per row).
constexpr int64_t kAttentionMaxHeadDim = 256;

// q [B, S, nh, hd] and k [B, S, nkv, hd] contiguous (already rotated); v [B, S, nkv, vd] at token
// stride ldv >= nkv·vd (a column slice of a wider matrix). out [B, S, nh, vd] contiguous (=);
// lse [B, nh, S] float (=), log Σ_k exp(score), kept for the backward.
template <class T>
void attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, int64_t ldv,
                       const AttentionShape& s, cudaStream_t stream);

// Floats of scratch attention_backward needs: D_i = dout_i · out_i for every query row, [B, nh, S].
int64_t attention_backward_workspace(const AttentionShape& s);

// dq [B, S, nh, hd] contiguous (=). dk [B, S, nkv, hd] and dv [B, S, nkv, vd], contiguous, are
// ACCUMULATED (+=): with cross-layer KV sharing several layers' gradients sum into the producer's
// k and v. dout and out [B, S, nh, vd] contiguous; lse [B, nh, S] from attention_forward; q, k, v
// as in the forward. Probabilities are recomputed from q, k and lse. Deterministic (no atomics).
// workspace: attention_backward_workspace(s) floats.
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        int64_t ldv, const T* out, const float* lse, const AttentionShape& s,
                        float* workspace, cudaStream_t stream);

}  // namespace hymba::cuda
