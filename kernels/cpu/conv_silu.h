// Causal depthwise conv1d + bias + SiLU (HYMBA_SPEC §2.6 step 1), over the whole S-long sequence
// (meta tokens first), zero left padding:
//   pre[b,t,e] = bias[e] + Σ_{k<K} w[e,k] · x[b, t−(K−1)+k, e]      (x at t < 0 is 0)
//   u = silu(pre)
// w[e, K−1] multiplies the current token. w is conv1d.weight [E,1,K] viewed as [E,K]. pre is not
// saved: the backward computes it again (conv_preactivation) from x, which it reads anyway for dw.
#pragma once

#include <cstdint>

namespace hymba::cpu {

// pre [B, S, E] contiguous (=) from x [B, S, E] at token stride ldx: the bias first, then the taps
// in order (the sum order the CUDA kernels follow too).
template <class T>
void conv_preactivation(T* pre, const T* x, int64_t ldx, const T* w, const T* bias, int64_t B,
                        int64_t S, int64_t E, int64_t K);

// x [B, S, E] at token stride ldx; u [B, S, E] contiguous.
template <class T>
void conv_silu_forward(T* u, const T* x, int64_t ldx, const T* w, const T* bias, int64_t B,
                       int64_t S, int64_t E, int64_t K);

// du [B, S, E]; x, w, bias as given to the forward; dx [B, S, E] at token stride lddx (=);
// dw [E, K] +=; dbias [E] +=.
template <class T>
void conv_silu_backward(T* dx, int64_t lddx, T* dw, T* dbias, const T* du, const T* x,
                        int64_t ldx, const T* w, const T* bias, int64_t B, int64_t S, int64_t E,
                        int64_t K);

}  // namespace hymba::cpu
