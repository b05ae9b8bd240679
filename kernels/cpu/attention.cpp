#include "cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention_mask.h"
#include "core/error.h"

namespace hymba::cpu {

namespace {

// Below this many multiply-adds a parallel region costs more than it saves (far more when the
// cores are oversubscribed, as under `ctest -j`).
constexpr int64_t kMinParallelWork = int64_t(1) << 15;

// Upper bound on the multiply-adds of a forward (the mask is ignored): B·nh·S²·(hd + vd).
bool worth_parallel(const AttentionShape& s) {
  return s.B * s.nh * s.S * s.S * (s.hd + s.vd) >= kMinParallelWork;
}

template <class T>
double dot(const T* a, const T* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
  return s;
}

void check_shape(const AttentionShape& s, int64_t ldv) {
  HYMBA_ASSERT(s.nkv > 0 && s.nh % s.nkv == 0);
  HYMBA_ASSERT(ldv >= s.nkv * s.vd);
}

}  // namespace

// Scores, softmax and the weighted sum accumulate in double for both element types: the CPU path
// is the reference. One query row at a time; rows are independent, so they run in parallel.
template <class T>
void attention_forward(T* out, T* lse, const T* q, const T* k, const T* v, int64_t ldv,
                       const AttentionShape& s) {
  check_shape(s, ldv);
  const int64_t S = s.S, nh = s.nh, nkv = s.nkv, hd = s.hd, vd = s.vd, rep = nh / nkv;
  const double scale = 1.0 / std::sqrt(double(hd));
#pragma omp parallel if (worth_parallel(s))
  {
    std::vector<double> p(static_cast<size_t>(S));     // [S] scores, then exp(score − max)
    std::vector<double> acc(static_cast<size_t>(vd));  // [vd] Σ_j p_j v_j
#pragma omp for collapse(3) schedule(static)
    for (int64_t b = 0; b < s.B; ++b) {
      for (int64_t h = 0; h < nh; ++h) {
        for (int64_t i = 0; i < S; ++i) {
          const int64_t g = h / rep;                      // this head's KV head
          const T* qi = q + ((b * S + i) * nh + h) * hd;  // [hd]
          double max = -std::numeric_limits<double>::infinity();
          for (int64_t j = 0; j < S; ++j) {
            if (!attention_allows(i, j, s.global, s.window, s.meta)) continue;
            p[j] = scale * dot(qi, k + ((b * S + j) * nkv + g) * hd, hd);
            max = std::max(max, p[j]);
          }
          // Subtracting the row max keeps every exp ≤ 1; the diagonal is always allowed, so the
          // max is finite and sum ≥ 1.
          double sum = 0;
          std::fill(acc.begin(), acc.end(), 0.0);
          for (int64_t j = 0; j < S; ++j) {
            if (!attention_allows(i, j, s.global, s.window, s.meta)) continue;
            const double pj = std::exp(p[j] - max);
            const T* vj = v + (b * S + j) * ldv + g * vd;  // [vd]
            sum += pj;
            for (int64_t c = 0; c < vd; ++c) acc[c] += pj * double(vj[c]);
          }
          T* oi = out + ((b * S + i) * nh + h) * vd;  // [vd]
          for (int64_t c = 0; c < vd; ++c) oi[c] = T(acc[c] / sum);
          lse[(b * nh + h) * S + i] = T(max + std::log(sum));
        }
      }
    }
  }
}

// Parallel over (batch, KV head): the rep query heads sharing a KV head are handled by one thread,
// so its dk and dv rows have a single writer (no races, no dependence on the thread count). They
// are summed in double per (b, KV head) and added to dk/dv once.
template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        int64_t ldv, const T* out, const T* lse, const AttentionShape& s) {
  check_shape(s, ldv);
  const int64_t S = s.S, nh = s.nh, nkv = s.nkv, hd = s.hd, vd = s.vd, rep = nh / nkv;
  const double scale = 1.0 / std::sqrt(double(hd));
#pragma omp parallel if (worth_parallel(s))
  {
    std::vector<double> dk_acc(static_cast<size_t>(S * hd));  // [S, hd] this KV head's dk
    std::vector<double> dv_acc(static_cast<size_t>(S * vd));  // [S, vd] this KV head's dv
    std::vector<double> dq_acc(static_cast<size_t>(hd));      // [hd] one query row's dq / scale
#pragma omp for collapse(2) schedule(static)
    for (int64_t b = 0; b < s.B; ++b) {
      for (int64_t g = 0; g < nkv; ++g) {
        std::fill(dk_acc.begin(), dk_acc.end(), 0.0);
        std::fill(dv_acc.begin(), dv_acc.end(), 0.0);
        for (int64_t h = g * rep; h < (g + 1) * rep; ++h) {
          for (int64_t i = 0; i < S; ++i) {
            const int64_t row = (b * S + i) * nh + h;
            const T* qi = q + row * hd;      // [hd]
            const T* doi = dout + row * vd;  // [vd]
            const double lse_i = lse[(b * nh + h) * S + i];
            const double D = dot(doi, out + row * vd, vd);  // D_i = dout_i · out_i
            std::fill(dq_acc.begin(), dq_acc.end(), 0.0);
            for (int64_t j = 0; j < S; ++j) {
              if (!attention_allows(i, j, s.global, s.window, s.meta)) continue;
              const T* kj = k + ((b * S + j) * nkv + g) * hd;  // [hd]
              const T* vj = v + (b * S + j) * ldv + g * vd;    // [vd]
              double* dkj = dk_acc.data() + j * hd;            // [hd]
              double* dvj = dv_acc.data() + j * vd;            // [vd]
              const double p = std::exp(scale * dot(qi, kj, hd) - lse_i);  // P_ij
              const double ds = p * (dot(doi, vj, vd) - D);                // dS_ij
              for (int64_t c = 0; c < hd; ++c) {
                dq_acc[c] += ds * double(kj[c]);
                dkj[c] += ds * double(qi[c]);
              }
              for (int64_t c = 0; c < vd; ++c) dvj[c] += p * double(doi[c]);
            }
            for (int64_t c = 0; c < hd; ++c) dq[row * hd + c] = T(scale * dq_acc[c]);
          }
        }
        for (int64_t j = 0; j < S; ++j) {
          T* dkj = dk + ((b * S + j) * nkv + g) * hd;  // [hd]
          T* dvj = dv + ((b * S + j) * nkv + g) * vd;  // [vd]
          for (int64_t c = 0; c < hd; ++c) dkj[c] += T(scale * dk_acc[j * hd + c]);
          for (int64_t c = 0; c < vd; ++c) dvj[c] += T(dv_acc[j * vd + c]);
        }
      }
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, const float*, const float*,
                                       int64_t, const AttentionShape&);
template void attention_forward<double>(double*, double*, const double*, const double*,
                                        const double*, int64_t, const AttentionShape&);
template void attention_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, int64_t, const float*,
                                        const float*, const AttentionShape&);
template void attention_backward<double>(double*, double*, double*, const double*, const double*,
                                         const double*, const double*, int64_t, const double*,
                                         const double*, const AttentionShape&);

}  // namespace hymba::cpu
