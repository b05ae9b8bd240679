#include "cpu/rope.h"

#include <cmath>

#include "core/error.h"

namespace hymba::cpu {

std::vector<float> rope_inv_freq(int64_t head_dim, double theta, bool ntk, int64_t max_pos,
                                 int64_t orig_max_pos) {
  HYMBA_ASSERT(head_dim > 0 && head_dim % 2 == 0);
  const double hd = double(head_dim);
  double base = theta;
  if (ntk) {
    HYMBA_ASSERT(head_dim > 2 && orig_max_pos > 0);
    base *= std::pow(2.0 * double(max_pos) / double(orig_max_pos) - 1.0, hd / (hd - 2.0));
  }
  std::vector<float> inv_freq(static_cast<size_t>(head_dim / 2));  // [hd/2]
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    inv_freq[static_cast<size_t>(i)] = float(std::pow(base, -2.0 * double(i) / hd));
  }
  return inv_freq;
}

namespace {

// Below this many elements a parallel region costs more than it saves (far more when the cores
// are oversubscribed, as under `ctest -j`).
constexpr int64_t kMinParallelWork = int64_t(1) << 15;

// out = R(sign · angle) · in for every head of every token: sign = +1 is the forward rotation,
// −1 its transpose (the backward). Both halves are read before either is written.
template <class T>
void rope_apply(T* out, int64_t ldout, const T* in, int64_t ldin, const float* inv_freq, int64_t B,
                int64_t S, int64_t heads, int64_t hd, T sign) {
  HYMBA_ASSERT(hd % 2 == 0);
  const int64_t half = hd / 2;
  const bool parallel = B * S * heads * hd >= kMinParallelWork;
  // cos and sin of every (position, frequency), shared by all batch rows and heads. The angle
  // is taken in double from the model's fp32 inv_freq: the reference's precision.
  std::vector<T> cos_t(static_cast<size_t>(S * half)), sin_t(cos_t.size());  // [S, hd/2]
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t s = 0; s < S; ++s) {
    for (int64_t i = 0; i < half; ++i) {
      const double angle = double(s) * double(inv_freq[i]);
      cos_t[s * half + i] = T(std::cos(angle));
      sin_t[s * half + i] = sign * T(std::sin(angle));
    }
  }
#pragma omp parallel for collapse(2) schedule(static) if (parallel)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < S; ++s) {
      const T* c = cos_t.data() + s * half;   // [hd/2]
      const T* sn = sin_t.data() + s * half;  // [hd/2]
      for (int64_t h = 0; h < heads; ++h) {
        const T* x = in + (b * S + s) * ldin + h * hd;  // [hd]
        T* y = out + (b * S + s) * ldout + h * hd;      // [hd]
        for (int64_t i = 0; i < half; ++i) {
          const T x1 = x[i], x2 = x[i + half];
          y[i] = x1 * c[i] - x2 * sn[i];
          y[i + half] = x2 * c[i] + x1 * sn[i];
        }
      }
    }
  }
}

}  // namespace

template <class T>
void rope_forward(T* y, const T* x, int64_t ldx, const float* inv_freq, int64_t B, int64_t S,
                  int64_t heads, int64_t hd) {
  rope_apply(y, heads * hd, x, ldx, inv_freq, B, S, heads, hd, T(1));
}

// The rotation is orthogonal, so its transpose is the rotation by the opposite angle.
template <class T>
void rope_backward(T* dx, int64_t lddx, const T* dy, const float* inv_freq, int64_t B, int64_t S,
                   int64_t heads, int64_t hd) {
  rope_apply(dx, lddx, dy, heads * hd, inv_freq, B, S, heads, hd, T(-1));
}

template void rope_forward<float>(float*, const float*, int64_t, const float*, int64_t, int64_t,
                                  int64_t, int64_t);
template void rope_forward<double>(double*, const double*, int64_t, const float*, int64_t, int64_t,
                                   int64_t, int64_t);
template void rope_backward<float>(float*, int64_t, const float*, const float*, int64_t, int64_t,
                                   int64_t, int64_t);
template void rope_backward<double>(double*, int64_t, const double*, const float*, int64_t, int64_t,
                                    int64_t, int64_t);

}  // namespace hymba::cpu
