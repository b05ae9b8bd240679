#include "cpu/selective_scan.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "cpu/activations.h"

namespace hymba::cpu {

namespace {

// Whether token t of batch row b starts a document (its state restarts from zero).
bool starts_document(const uint8_t* doc_start, int64_t b, int64_t S, int64_t t) {
  return doc_start && doc_start[b * S + t] != 0;
}

}  // namespace

template <class T>
void selective_scan_forward(T* out, T* hT, const ScanInputs<T>& in, const ScanShape& s) {
  const int64_t B = s.B, S = s.S, E = s.E, N = s.N;
  // Every (b, e) channel is an independent recurrence over t.
#pragma omp parallel
  {
    std::vector<T> A(N), h(N);  // [N] of the current channel
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t e = 0; e < E; ++e) {
        for (int64_t n = 0; n < N; ++n) {
          A[n] = -std::exp(in.A_log[e * N + n]);
          h[n] = in.h0 ? in.h0[(b * E + e) * N + n] : T(0);
        }
        for (int64_t t = 0; t < S; ++t) {
          const int64_t i = (b * S + t) * E + e;
          const T* Bt = in.Bm + (b * S + t) * N;  // [N]
          const T* Ct = in.Cm + (b * S + t) * N;  // [N]
          const T dt = softplus(in.delta[i] + in.dt_bias[e]);
          const T dtu = dt * in.u[i];
          const bool reset = starts_document(in.doc_start, b, S, t);
          T y = in.D[e] * in.u[i];
          for (int64_t n = 0; n < N; ++n) {
            const T a = reset ? T(0) : std::exp(dt * A[n]);
            h[n] = a * h[n] + dtu * Bt[n];
            y += Ct[n] * h[n];
          }
          out[i] = y * silu(in.z[(b * S + t) * in.ldz + e]);
        }
        if (hT)
          for (int64_t n = 0; n < N; ++n) hT[(b * E + e) * N + n] = h[n];
      }
    }
  }
}

template <class T>
void selective_scan_backward(const ScanGrads<T>& gr, const T* dout, const T* dhT,
                             const ScanInputs<T>& in, const ScanShape& s) {
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
    std::vector<T> A(N), dA(N), g(N);   // [N]
    std::vector<T> dt(S), y(S);         // [S]
    std::vector<T> a(S * N), h(S * N);  // [S, N]: a_t and h_t of one (b, e)
#pragma omp for schedule(static)
    for (int64_t e = 0; e < E; ++e) {
      for (int64_t n = 0; n < N; ++n) {
        A[n] = -std::exp(in.A_log[e * N + n]);
        dA[n] = T(0);
      }
      T ddt_bias_e = 0, dD_e = 0;
      for (int64_t b = 0; b < B; ++b) {
        const T* h0 = in.h0 ? in.h0 + (b * E + e) * N : nullptr;  // [N] or none
        // h_{t−1}[n] for t >= 0: the previous row of h, or h0 before token 0.
        const auto h_prev = [&](int64_t t, int64_t n) {
          return t > 0 ? h[(t - 1) * N + n] : (h0 ? h0[n] : T(0));
        };
        // Recompute the forward of this (b, e): Δ_t, a_t, h_t and y_t for all t.
        for (int64_t t = 0; t < S; ++t) {
          const int64_t i = (b * S + t) * E + e;
          const T* Bt = in.Bm + (b * S + t) * N;  // [N]
          const T* Ct = in.Cm + (b * S + t) * N;  // [N]
          const bool reset = starts_document(in.doc_start, b, S, t);
          dt[t] = softplus(in.delta[i] + in.dt_bias[e]);
          const T dtu = dt[t] * in.u[i];
          T yt = in.D[e] * in.u[i];
          for (int64_t n = 0; n < N; ++n) {
            a[t * N + n] = reset ? T(0) : std::exp(dt[t] * A[n]);
            h[t * N + n] = a[t * N + n] * h_prev(t, n) + dtu * Bt[n];
            yt += Ct[n] * h[t * N + n];
          }
          y[t] = yt;
        }
        // Reverse pass. g[n] carries dL/dh_t[n]: it starts from dhT, collects y_t's gradient,
        // then flows to h_{t−1} through the factor a_t (so it stops at a document start).
        for (int64_t n = 0; n < N; ++n) g[n] = dhT ? dhT[(b * E + e) * N + n] : T(0);
        for (int64_t t = S - 1; t >= 0; --t) {
          const int64_t i = (b * S + t) * E + e;
          const T* Bt = in.Bm + (b * S + t) * N;  // [N]
          const T* Ct = in.Cm + (b * S + t) * N;  // [N]
          const T* at = a.data() + t * N;         // [N]
          const T* ht = h.data() + t * N;         // [N]
          T* dBt = pdB + (b * S + t) * N;         // [N]
          T* dCt = pdC + (b * S + t) * N;         // [N]
          const T ut = in.u[i];
          const T zt = in.z[(b * S + t) * in.ldz + e];
          const T dy = dout[i] * silu(zt);
          gr.dz[(b * S + t) * gr.lddz + e] = dout[i] * y[t] * silu_grad(zt);
          T ddt = 0, du_t = dy * in.D[e];
          for (int64_t n = 0; n < N; ++n) {
            g[n] += dy * Ct[n];
            dCt[n] += dy * ht[n];
            const T ah = at[n] * h_prev(t, n);  // a_t · h_{t−1}
            ddt += g[n] * (A[n] * ah + Bt[n] * ut);
            dA[n] += g[n] * dt[t] * ah;
            dBt[n] += g[n] * dt[t] * ut;
            du_t += g[n] * dt[t] * Bt[n];
            g[n] *= at[n];
          }
          gr.du[i] = du_t;
          dD_e += dy * ut;
          gr.ddelta[i] = ddt * softplus_grad(in.delta[i] + in.dt_bias[e]);
          ddt_bias_e += gr.ddelta[i];
        }
        // What is left in g flowed through a_0 into h0 (with S = 0, it is dhT).
        if (gr.dh0)
          for (int64_t n = 0; n < N; ++n) gr.dh0[(b * E + e) * N + n] = g[n];
      }
      gr.ddt_bias[e] += ddt_bias_e;
      gr.dD[e] += dD_e;
      // A = −exp(A_log), so dA/dA_log = A.
      for (int64_t n = 0; n < N; ++n) gr.dA_log[e * N + n] += dA[n] * A[n];
    }  // implicit barrier: every partial is complete
#pragma omp for schedule(static)
    for (int64_t j = 0; j < BSN; ++j) {
      T sB = 0, sC = 0;
      for (int th = 0; th < threads; ++th) {
        sB += partial[static_cast<size_t>(th) * 2 * BSN + j];
        sC += partial[static_cast<size_t>(th) * 2 * BSN + BSN + j];
      }
      gr.dBm[j] = sB;
      gr.dCm[j] = sC;
    }
  }
}

template void selective_scan_forward<float>(float*, float*, const ScanInputs<float>&,
                                            const ScanShape&);
template void selective_scan_forward<double>(double*, double*, const ScanInputs<double>&,
                                             const ScanShape&);
template void selective_scan_backward<float>(const ScanGrads<float>&, const float*, const float*,
                                             const ScanInputs<float>&, const ScanShape&);
template void selective_scan_backward<double>(const ScanGrads<double>&, const double*,
                                              const double*, const ScanInputs<double>&,
                                              const ScanShape&);

}  // namespace hymba::cpu
