// Causal depthwise conv1d + bias + SiLU (HYMBA_SPEC §2.6 step 1), over the whole S-long sequence
// (meta tokens first), zero left padding:
//   pre[b,t,e] = bias[e] + Σ_{k<K} w[e,k] · x[b, t−(K−1)+k, e]      (x at t < 0 is 0)
//   u = silu(pre)
// w[e, K−1] multiplies the current token. w is conv1d.weight [E,1,K] viewed as [E,K].
#pragma once

#include <cstdint>

namespace hymba::cpu {

// x [B, S, E] at token stride ldx; u and pre [B, S, E] contiguous (pre is saved for backward).
template <class T>
void conv_silu_forward(T* u, T* pre, const T* x, int64_t ldx, const T* w, const T* bias,
                       int64_t B, int64_t S, int64_t E, int64_t K);

// du [B, S, E]; dx [B, S, E] at token stride lddx (=); dw [E, K] +=; dbias [E] +=.
template <class T>
void conv_silu_backward(T* dx, int64_t lddx, T* dw, T* dbias, const T* du, const T* x,
                        int64_t ldx, const T* pre, const T* w, int64_t B, int64_t S, int64_t E,
                        int64_t K);

}  // namespace hymba::cpu
