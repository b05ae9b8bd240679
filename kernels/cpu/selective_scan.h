// Mamba-1 selective scan with Hymba's conventions (HYMBA_SPEC §2.6 steps 4-6), all arithmetic in
// the element type (float or double):
//   Δ[t,e]   = softplus(delta[t,e] + dt_bias[e])          (softplus(x) = x for x > 20)
//   A[e,n]   = −exp(A_log[e,n])
//   a[t,e,n] = exp(Δ[t,e]·A[e,n]), or 0 where token t starts a document (doc_start[t] ≠ 0)
//   h[t,e,n] = a[t,e,n] · h[t−1,e,n] + Δ[t,e] · Bm[t,n] · u[t,e]     (h[−1] = h0, or 0)
//   y[t,e]   = Σ_n Cm[t,n] · h[t,e,n] + D[e] · u[t,e]
//   out[t,e] = y[t,e] · silu(z[t,e])
// per batch row; Bm and Cm are shared by all E channels (per batch row and token). The model
// (HYMBA_SPEC) starts from zero at the first meta token with no resets; the initial state, the
// final state and the document resets are for packed training and stepwise decoding.
#pragma once

#include <cstdint>

namespace hymba::cpu {

struct ScanShape {
  int64_t B, S, E, N;  // batch, sequence (meta + text), channels, state size
};

// The scan's inputs. T is the activation type, P the type of the parameters and of the state
// (the CPU kernels use P = T; the CUDA ones T = float or bf16 with P = float).
template <class T, class P = T>
struct ScanInputs {
  const T* u;        // [B, S, E] contiguous
  const T* delta;    // [B, S, E] contiguous, before the bias
  const T* z;        // [B, S, E] at token stride ldz (>= E)
  int64_t ldz;
  const T* Bm;       // [B, S, N] contiguous
  const T* Cm;       // [B, S, N] contiguous
  const P* dt_bias;  // [E]
  const P* A_log;    // [E, N]
  const P* D;        // [E]
  const P* h0 = nullptr;                // [B, E, N]: the state before token 0; null: zero
  const uint8_t* doc_start = nullptr;  // [B, S]: nonzero where a document starts; null: none
};

// The scan's gradients: du, ddelta [B, S, E] contiguous and dz [B, S, E] at token stride lddz
// (>= E), dBm, dCm [B, S, N] contiguous are written (=); ddt_bias [E], dA_log [E, N], dD [E] are
// accumulated (+=); dh0 [B, E, N] is written (=) unless null (it is dL/dh0 whether or not the
// forward had an h0: zero where token 0 starts a document).
template <class T, class P = T>
struct ScanGrads {
  T* du;
  T* ddelta;
  T* dz;
  int64_t lddz;
  T* dBm;
  T* dCm;
  P* ddt_bias;
  P* dA_log;
  P* dD;
  P* dh0 = nullptr;
};

// out [B, S, E] contiguous (=); hT [B, E, N] (=) the state after the last token, unless null.
// Nothing else is saved: the backward recomputes the states from the inputs.
template <class T>
void selective_scan_forward(T* out, T* hT, const ScanInputs<T>& in, const ScanShape& s);

// dout [B, S, E] contiguous; dhT [B, E, N] the gradient arriving at the final state, or null for
// zero. The outputs must not overlap the inputs.
template <class T>
void selective_scan_backward(const ScanGrads<T>& grads, const T* dout, const T* dhT,
                             const ScanInputs<T>& in, const ScanShape& s);

}  // namespace hymba::cpu
