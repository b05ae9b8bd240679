// Softmax attention with GQA and Hymba's masks (HYMBA_SPEC §2.5), exact (no tiling): the
// reference the CUDA kernels are checked against. Scores use scale 1/sqrt(hd), hd = q/k head dim;
// value heads have their own width vd. Query head j reads KV head j / (nh / nkv).
#pragma once

#include <cstdint>

namespace hymba::cpu {

struct AttentionShape {
  int64_t B, S;     // batch, sequence length (meta + text)
  int64_t nh, nkv;  // query heads, key/value heads (nh % nkv == 0)
  int64_t hd, vd;   // q/k head dim, v head dim
  bool global;      // plain causal mask
  int64_t window;   // sliding window W (ignored when global)
  int64_t meta;     // number of meta tokens M, always visible to non-global layers
};

// q [B, S, nh, hd], k [B, S, nkv, hd] contiguous (already rotated); v [B, S, nkv, vd] at token
// stride ldv. out [B, S, nh, vd] contiguous; lse [B, nh, S] = log Σ_k exp(score), for backward.
template <class T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, int64_t ldv,
                       const AttentionShape& s);

// dq [B, S, nh, hd] (=). dk [B, S, nkv, hd] and dv [B, S, nkv, vd], contiguous, are ACCUMULATED
// (+=): with cross-layer KV sharing several layers' gradients sum into the producer's k and v.
// Probabilities are recomputed from q, k and lse; D_i = dout_i · out_i.
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        int64_t ldv, const T* out, const T* lse, const AttentionShape& s);

}  // namespace hymba::cpu
