// Flash attention on the GPU: the contract of kernels/cuda/attention.h (GQA, the global causal mask
// or the sliding-window + meta-token mask of HYMBA_SPEC §2.5, scale 1/sqrt(hd), out written, lse
// written, dq written, dk/dv ACCUMULATED) computed with bf16 tensor cores (Hopper wgmma, fp32
// accumulators, fp32 softmax) for the one head shape every Hymba config has: hd = 64, vd = 128.
// bf16 activations only: the fp32 path and every other shape stay on cuda::attention_*, which is
// also the reference backend. The caller dispatches with flash_attention_supports.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cpu/attention.h"

namespace hymba::cuda {

using cpu::AttentionShape;

// The head dims the kernels are built for (q/k head dim, v head dim).
constexpr int64_t kFlashHeadDim = 64;
constexpr int64_t kFlashValueDim = 128;

// Whether the flash kernels take the shape: hd == 64, vd == 128, a valid GQA grouping, non-negative
// window and meta (local layers), S <= 2^30, and (second form) a v row stride ldv >= nkv·vd that
// is a multiple of 8 (rows are moved in 16-byte pieces). Shapes they do not take make the
// launchers fail (hymba::fail naming the op and the values). The one-argument form assumes a
// contiguous v (ldv = nkv·vd).
bool flash_attention_supports(const AttentionShape& s);
bool flash_attention_supports(const AttentionShape& s, int64_t ldv);

// q [B, S, nh, hd] and k [B, S, nkv, hd] contiguous (already rotated); v [B, S, nkv, vd] at token
// stride ldv >= nkv·vd (a column slice of a wider matrix). out [B, S, nh, vd] contiguous (=);
// lse [B, nh, S] float (=), log Σ_k exp(score) with natural log, kept for the backward.
// bf16 pointers 16-byte aligned (rows move in 16-byte pieces), float pointers 4-byte aligned; the
// launchers check. T = bf16 only (the only instantiation).
template <class T>
void flash_attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, int64_t ldv,
                             const AttentionShape& s, cudaStream_t stream);

// Floats of scratch flash_attention_backward needs: the fp32 dk/dv partial sums when the dk/dv
// work is split (parts > 1, below: B·nkv·ceil(S/64)·parts·64·192 floats, e.g. 8.4 M floats =
// 34 MB at B 2, S 2176, nkv 5, parts 2; none at B 2, S 8320 global), then D_i = dout_i · out_i and
// lse_i·log2(e) for every query row, two [B, nh, S] arrays. A function of the shape only.
int64_t flash_attention_backward_workspace(const AttentionShape& s);

// Into how many parts the backward cuts each 64-key tile's work (the GQA group's query heads x
// the query tiles that see the tile), 1 to 4, chosen from the shape alone so that dk/dv's bits do
// not depend on the device; with parts > 1 the part sums meet in a fixed order in a reduction
// kernel. Informational (tests, benchmarks); 1 for shapes the kernels do not take.
int flash_attention_dkdv_parts(const AttentionShape& s);

// dq [B, S, nh, hd] contiguous (=). dk [B, S, nkv, hd] and dv [B, S, nkv, vd], contiguous, are
// ACCUMULATED (+=): with cross-layer KV sharing several layers' gradients sum into the producer's
// k and v. dout and out [B, S, nh, vd] contiguous; lse [B, nh, S] from flash_attention_forward (or
// attention_forward); q, k, v as in the forward. Probabilities are recomputed from q, k and lse.
// Deterministic (no atomics). workspace: flash_attention_backward_workspace(s) floats, 16-byte
// aligned. Other alignment as in the forward. T = bf16 only.
template <class T>
void flash_attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                              int64_t ldv, const T* out, const float* lse, const AttentionShape& s,
                              float* workspace, cudaStream_t stream);

extern template void flash_attention_forward<__nv_bfloat16>(__nv_bfloat16*, float*, const __nv_bfloat16*,
                                                            const __nv_bfloat16*, const __nv_bfloat16*, int64_t,
                                                            const AttentionShape&, cudaStream_t);
extern template void flash_attention_backward<__nv_bfloat16>(
    __nv_bfloat16*, __nv_bfloat16*, __nv_bfloat16*, const __nv_bfloat16*, const __nv_bfloat16*,
    const __nv_bfloat16*, const __nv_bfloat16*, int64_t, const __nv_bfloat16*, const float*,
    const AttentionShape&, float*, cudaStream_t);

}  // namespace hymba::cuda
