// Mamba-1 selective scan with Hymba's conventions (HYMBA_SPEC §2.6 steps 4-6), state from zero
// at the first (meta) token, all arithmetic in the element type (float or double):
//   Δ[t,e]   = softplus(delta[t,e] + dt_bias[e])          (softplus(x) = x for x > 20)
//   A[e,n]   = −exp(A_log[e,n])
//   h[t,e,n] = exp(Δ[t,e]·A[e,n]) · h[t−1,e,n] + Δ[t,e] · Bm[t,n] · u[t,e]
//   y[t,e]   = Σ_n Cm[t,n] · h[t,e,n] + D[e] · u[t,e]
//   out[t,e] = y[t,e] · silu(z[t,e])
// Bm and Cm are shared by all E channels (per batch row and token).
#pragma once

#include <cstdint>

namespace hymba::cpu {

struct ScanShape {
  int64_t B, S, E, N;  // batch, sequence (meta + text), channels, state size
};

// u, delta [B, S, E] contiguous; z [B, S, E] at token stride ldz; Bm, Cm [B, S, N] contiguous;
// dt_bias [E]; A_log [E, N]; D [E]. out [B, S, E] contiguous. Nothing is saved: the backward
// recomputes the states from the inputs.
template <class T>
void selective_scan_forward(T* out, const T* u, const T* delta, const T* dt_bias, const T* A_log,
                            const T* Bm, const T* Cm, const T* D, const T* z, int64_t ldz,
                            const ScanShape& s);

// Written (=): du, ddelta [B, S, E]; dz [B, S, E] at token stride lddz; dBm, dCm [B, S, N].
// Accumulated (+=): ddt_bias [E], dA_log [E, N], dD [E].
template <class T>
void selective_scan_backward(T* du, T* ddelta, T* dz, int64_t lddz, T* dBm, T* dCm, T* ddt_bias,
                             T* dA_log, T* dD, const T* dout, const T* u, const T* delta,
                             const T* dt_bias, const T* A_log, const T* Bm, const T* Cm,
                             const T* D, const T* z, int64_t ldz, const ScanShape& s);

}  // namespace hymba::cpu
