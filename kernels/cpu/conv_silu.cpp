#include "cpu/conv_silu.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "cpu/activations.h"

namespace hymba::cpu {

template <class T>
void conv_preactivation(T* pre, const T* x, int64_t ldx, const T* w, const T* bias, int64_t B,
                        int64_t S, int64_t E, int64_t K) {
  // One output token per iteration, channels innermost so every inner loop is contiguous.
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t t = 0; t < S; ++t) {
      T* p = pre + (b * S + t) * E;  // [E]
      for (int64_t e = 0; e < E; ++e) p[e] = bias[e];
      // Tap k reads token t − (K−1) + k; the taps before the first token read the zero padding,
      // so they are skipped.
      for (int64_t k = std::max<int64_t>(0, K - 1 - t); k < K; ++k) {
        const T* xs = x + (b * S + t - (K - 1) + k) * ldx;  // [E]
        for (int64_t e = 0; e < E; ++e) p[e] += w[e * K + k] * xs[e];
      }
    }
  }
}

template <class T>
void conv_silu_forward(T* u, const T* x, int64_t ldx, const T* w, const T* bias, int64_t B,
                       int64_t S, int64_t E, int64_t K) {
  std::vector<T> pre(B * S * E);  // [B, S, E]
  conv_preactivation(pre.data(), x, ldx, w, bias, B, S, E, K);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B * S * E; ++i) u[i] = silu(pre[i]);
}

template <class T>
void conv_silu_backward(T* dx, int64_t lddx, T* dw, T* dbias, const T* du, const T* x,
                        int64_t ldx, const T* w, const T* bias, int64_t B, int64_t S, int64_t E,
                        int64_t K) {
  // dpre is kept whole because each token's dpre feeds K tokens' dx.
  std::vector<T> dpre(B * S * E);  // [B, S, E]: pre first, then du · silu'(pre) in place
  conv_preactivation(dpre.data(), x, ldx, w, bias, B, S, E, K);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < B * S * E; ++i) dpre[i] = du[i] * silu_grad(dpre[i]);

  // Token s is tap k of output s + (K−1) − k, so dx[s] = Σ_k w[:, k] · dpre[s + (K−1) − k].
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < S; ++s) {
      T* d = dx + (b * S + s) * lddx;  // [E]
      for (int64_t e = 0; e < E; ++e) d[e] = T(0);
      for (int64_t k = std::max<int64_t>(0, s + K - S); k < K; ++k) {
        const T* g = dpre.data() + (b * S + s + K - 1 - k) * E;  // [E]
        for (int64_t e = 0; e < E; ++e) d[e] += w[e * K + k] * g[e];
      }
    }
  }

  // dw and dbias are sums over all (b, t). Each thread owns a contiguous block of channels and
  // sums them over (b, t) in order: race-free, and the same result for every thread count.
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t e0 = E * id / nt, e1 = E * (id + 1) / nt;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < S; ++t) {
        const T* g = dpre.data() + (b * S + t) * E;  // [E]
        for (int64_t e = e0; e < e1; ++e) dbias[e] += g[e];
        for (int64_t k = std::max<int64_t>(0, K - 1 - t); k < K; ++k) {
          const T* xs = x + (b * S + t - (K - 1) + k) * ldx;  // [E]
          for (int64_t e = e0; e < e1; ++e) dw[e * K + k] += g[e] * xs[e];
        }
      }
    }
  }
}

template void conv_preactivation<float>(float*, const float*, int64_t, const float*, const float*,
                                        int64_t, int64_t, int64_t, int64_t);
template void conv_preactivation<double>(double*, const double*, int64_t, const double*,
                                         const double*, int64_t, int64_t, int64_t, int64_t);
template void conv_silu_forward<float>(float*, const float*, int64_t, const float*, const float*,
                                       int64_t, int64_t, int64_t, int64_t);
template void conv_silu_forward<double>(double*, const double*, int64_t, const double*,
                                        const double*, int64_t, int64_t, int64_t, int64_t);
template void conv_silu_backward<float>(float*, int64_t, float*, float*, const float*,
                                        const float*, int64_t, const float*, const float*,
                                        int64_t, int64_t, int64_t, int64_t);
template void conv_silu_backward<double>(double*, int64_t, double*, double*, const double*,
                                         const double*, int64_t, const double*, const double*,
                                         int64_t, int64_t, int64_t, int64_t);

}  // namespace hymba::cpu
