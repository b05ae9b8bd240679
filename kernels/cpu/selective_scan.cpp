#include "cpu/selective_scan.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "cpu/activations.h"

namespace hymba::cpu {

template <class T>
void selective_scan_forward(T* out, const T* u, const T* delta, const T* dt_bias, const T* A_log,
                            const T* Bm, const T* Cm, const T* D, const T* z, int64_t ldz,
                            const ScanShape& s) {
  const int64_t B = s.B, S = s.S, E = s.E, N = s.N;
  // Every (b, e) channel is an independent recurrence over t.
#pragma omp parallel
  {
    std::vector<T> A(N), h(N);  // [N] of the current channel
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t e = 0; e < E; ++e) {
        for (int64_t n = 0; n < N; ++n) {
          A[n] = -std::exp(A_log[e * N + n]);
          h[n] = T(0);
        }
        for (int64_t t = 0; t < S; ++t) {
          const int64_t i = (b * S + t) * E + e;
          const T* Bt = Bm + (b * S + t) * N;  // [N]
          const T* Ct = Cm + (b * S + t) * N;  // [N]
          const T dt = softplus(delta[i] + dt_bias[e]);
          const T dtu = dt * u[i];
          T y = D[e] * u[i];
          for (int64_t n = 0; n < N; ++n) {
            h[n] = std::exp(dt * A[n]) * h[n] + dtu * Bt[n];
            y += Ct[n] * h[n];
          }
          out[i] = y * silu(z[(b * S + t) * ldz + e]);
        }
      }
    }
  }
}

template <class T>
void selective_scan_backward(T* du, T* ddelta, T* dz, int64_t lddz, T* dBm, T* dCm, T* ddt_bias,
                             T* dA_log, T* dD, const T* dout, const T* u, const T* delta,
                             const T* dt_bias, const T* A_log, const T* Bm, const T* Cm,
                             const T* D, const T* z, int64_t ldz, const ScanShape& s) {
  const int64_t B = s.B, S = s.S, E = s.E, N = s.N;
  const int64_t BSN = B * S * N;
  // Threads split the channels e, so each owns the per-channel gradients (ddt_bias, dA_log, dD)
  // outright. dBm and dCm are sums over all channels: each thread sums its channels into a
  // private [dBm | dCm] buffer, and the buffers are added in thread order at the end, so the
  // result is reproducible run to run.
  std::vector<T> partial;  // [threads, 2, B, S, N]
  int threads = 1;
#pragma omp parallel
  {
#pragma omp single
    {
      threads = omp_get_num_threads();
      partial.assign(static_cast<size_t>(threads) * 2 * BSN, T(0));
    }  // implicit barrier: partial is ready for every thread
    T* pdB = partial.data() + static_cast<size_t>(omp_get_thread_num()) * 2 * BSN;  // [B, S, N]
    T* pdC = pdB + BSN;                                                             // [B, S, N]
    std::vector<T> A(N), dA(N), g(N);  // [N]
    std::vector<T> dt(S), y(S);        // [S]
    std::vector<T> a(S * N), h(S * N);  // [S, N]: exp(Δ_t A) and h_t of one (b, e)
#pragma omp for schedule(static)
    for (int64_t e = 0; e < E; ++e) {
      for (int64_t n = 0; n < N; ++n) {
        A[n] = -std::exp(A_log[e * N + n]);
        dA[n] = T(0);
      }
      T ddt_bias_e = 0, dD_e = 0;
      for (int64_t b = 0; b < B; ++b) {
        // Recompute the forward of this (b, e): Δ_t, exp(Δ_t A), h_t and y_t for all t.
        for (int64_t t = 0; t < S; ++t) {
          const int64_t i = (b * S + t) * E + e;
          const T* Bt = Bm + (b * S + t) * N;  // [N]
          const T* Ct = Cm + (b * S + t) * N;  // [N]
          T* at = a.data() + t * N;            // [N]
          T* ht = h.data() + t * N;            // [N]
          dt[t] = softplus(delta[i] + dt_bias[e]);
          const T dtu = dt[t] * u[i];
          T yt = D[e] * u[i];
          for (int64_t n = 0; n < N; ++n) {
            at[n] = std::exp(dt[t] * A[n]);
            ht[n] = (t > 0 ? at[n] * ht[n - N] : T(0)) + dtu * Bt[n];  // ht[n − N] = h_{t−1}[n]
            yt += Ct[n] * ht[n];
          }
          y[t] = yt;
        }
        // Reverse pass. g[n] carries dL/dh_t[n]: it collects y_t's gradient, then flows to
        // h_{t−1} through the factor a_t.
        for (int64_t n = 0; n < N; ++n) g[n] = T(0);
        for (int64_t t = S - 1; t >= 0; --t) {
          const int64_t i = (b * S + t) * E + e;
          const T* Bt = Bm + (b * S + t) * N;  // [N]
          const T* Ct = Cm + (b * S + t) * N;  // [N]
          const T* at = a.data() + t * N;      // [N]
          const T* ht = h.data() + t * N;      // [N]
          T* dBt = pdB + (b * S + t) * N;      // [N]
          T* dCt = pdC + (b * S + t) * N;      // [N]
          const T zt = z[(b * S + t) * ldz + e];
          const T dy = dout[i] * silu(zt);
          dz[(b * S + t) * lddz + e] = dout[i] * y[t] * silu_grad(zt);
          T ddt = 0, du_t = dy * D[e];
          for (int64_t n = 0; n < N; ++n) {
            g[n] += dy * Ct[n];
            dCt[n] += dy * ht[n];
            const T ah = t > 0 ? at[n] * ht[n - N] : T(0);  // a_t · h_{t−1}
            ddt += g[n] * (A[n] * ah + Bt[n] * u[i]);
            dA[n] += g[n] * dt[t] * ah;
            dBt[n] += g[n] * dt[t] * u[i];
            du_t += g[n] * dt[t] * Bt[n];
            g[n] *= at[n];
          }
          du[i] = du_t;
          dD_e += dy * u[i];
          ddelta[i] = ddt * softplus_grad(delta[i] + dt_bias[e]);
          ddt_bias_e += ddelta[i];
        }
      }
      ddt_bias[e] += ddt_bias_e;
      dD[e] += dD_e;
      // A = −exp(A_log), so dA/dA_log = A.
      for (int64_t n = 0; n < N; ++n) dA_log[e * N + n] += dA[n] * A[n];
    }  // implicit barrier: every partial is complete
#pragma omp for schedule(static)
    for (int64_t j = 0; j < BSN; ++j) {
      T sB = 0, sC = 0;
      for (int th = 0; th < threads; ++th) {
        sB += partial[static_cast<size_t>(th) * 2 * BSN + j];
        sC += partial[static_cast<size_t>(th) * 2 * BSN + BSN + j];
      }
      dBm[j] = sB;
      dCm[j] = sC;
    }
  }
}

template void selective_scan_forward<float>(float*, const float*, const float*, const float*,
                                            const float*, const float*, const float*,
                                            const float*, const float*, int64_t,
                                            const ScanShape&);
template void selective_scan_forward<double>(double*, const double*, const double*,
                                             const double*, const double*, const double*,
                                             const double*, const double*, const double*,
                                             int64_t, const ScanShape&);
template void selective_scan_backward<float>(float*, float*, float*, int64_t, float*, float*,
                                             float*, float*, float*, const float*, const float*,
                                             const float*, const float*, const float*,
                                             const float*, const float*, const float*,
                                             const float*, int64_t, const ScanShape&);
template void selective_scan_backward<double>(double*, double*, double*, int64_t, double*,
                                              double*, double*, double*, double*, const double*,
                                              const double*, const double*, const double*,
                                              const double*, const double*, const double*,
                                              const double*, const double*, int64_t,
                                              const ScanShape&);

}  // namespace hymba::cpu
