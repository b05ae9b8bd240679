// Causal depthwise conv1d + bias + SiLU (kernels/cpu/conv_silu.h).
#include "cpu/conv_silu.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "tests/gradcheck.h"
#include "tests/strided.h"

namespace hymba::cpu {
namespace {

using test::cast_vector;
using test::random_vector;
using test::embed;
using test::expect_gaps_untouched;
using test::extract;

// x and dx are column slices of wider rows (see strided.h): these are their columns.
constexpr int64_t kXCol = 1, kDxCol = 2;

struct Conv {
  int64_t B, S, E, K;
  std::vector<double> x, w, bias;  // [B, S, E] compact, [E, K], [E]

  Conv(int64_t B_, int64_t S_, int64_t E_, int64_t K_, uint64_t seed)
      : B(B_), S(S_), E(E_), K(K_), x(random_vector(B * S * E, seed)),
        w(random_vector(E * K, seed + 1, 0.7)), bias(random_vector(E, seed + 2, 0.5)) {}

  int64_t ldx() const { return E + 3; }
  int64_t lddx() const { return E + 4; }

  // Runs the kernel in T with x embedded at stride ldx; returns u, and (conv_preactivation) pre
  // through *pre.
  template <class T>
  std::vector<T> forward(std::vector<T>* pre = nullptr) const {
    const std::vector<T> xw = cast_vector<T>(embed(x, B * S, E, ldx(), kXCol));  // [B, S, ldx]
    const std::vector<T> wt = cast_vector<T>(w), bt = cast_vector<T>(bias);
    std::vector<T> u(B * S * E);  // [B, S, E]
    conv_silu_forward<T>(u.data(), xw.data() + kXCol, ldx(), wt.data(), bt.data(), B, S, E, K);
    if (pre) {
      pre->assign(B * S * E, T(0));  // [B, S, E]
      conv_preactivation<T>(pre->data(), xw.data() + kXCol, ldx(), wt.data(), bt.data(), B, S, E,
                            K);
    }
    return u;
  }

  struct Grads {
    std::vector<double> dx_wide, dw, dbias;  // [B, S, lddx], [E, K], [E]
  };

  // The backward in double with dout = r, into g (dx written, dw and dbias accumulated).
  void backward(const std::vector<double>& r, Grads* g) const {
    const std::vector<double> xw = embed(x, B * S, E, ldx(), kXCol);
    conv_silu_backward<double>(g->dx_wide.data() + kDxCol, lddx(), g->dw.data(),
                               g->dbias.data(), r.data(), xw.data() + kXCol, ldx(), w.data(),
                               bias.data(), B, S, E, K);
  }

  Grads fresh_grads() const {
    // dx is prefilled with junk in its slice: being written (=), it must not matter.
    std::vector<double> dx_wide = embed(random_vector(B * S * E, 99, 1e3), B * S, E, lddx(),
                                        kDxCol);
    return {dx_wide, std::vector<double>(E * K, 0.0), std::vector<double>(E, 0.0)};
  }
};

// Direct loop over the header's formula, in double.
void naive_conv(const Conv& c, std::vector<double>* u, std::vector<double>* pre) {
  u->assign(c.B * c.S * c.E, 0.0);
  pre->assign(c.B * c.S * c.E, 0.0);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t t = 0; t < c.S; ++t)
      for (int64_t e = 0; e < c.E; ++e) {
        double acc = c.bias[e];
        for (int64_t k = 0; k < c.K; ++k) {
          const int64_t src = t - (c.K - 1) + k;
          if (src >= 0) acc += c.w[e * c.K + k] * c.x[(b * c.S + src) * c.E + e];
        }
        const int64_t i = (b * c.S + t) * c.E + e;
        (*pre)[i] = acc;
        (*u)[i] = acc / (1.0 + std::exp(-acc));
      }
}

template <class T>
void expect_forward_matches_naive(double tol) {
  for (const auto& [B, S, E, K] : std::vector<std::array<int64_t, 4>>{
           {1, 1, 5, 4}, {2, 3, 5, 4}, {2, 33, 7, 4}, {1, 9, 3, 2}, {2, 5, 4, 1}}) {
    const Conv c(B, S, E, K, 10 + S);
    std::vector<double> u_ref, pre_ref;
    naive_conv(c, &u_ref, &pre_ref);
    std::vector<T> pre;
    const std::vector<T> u = c.forward<T>(&pre);
    for (size_t i = 0; i < u.size(); ++i) {
      ASSERT_NEAR(u[i], u_ref[i], tol) << "B=" << B << " S=" << S << " E=" << E << " K=" << K;
      ASSERT_NEAR(pre[i], pre_ref[i], tol) << "i=" << i;
    }
  }
}

TEST(ConvSilu, ForwardMatchesNaiveFloat) { expect_forward_matches_naive<float>(2e-6); }
TEST(ConvSilu, ForwardMatchesNaiveDouble) { expect_forward_matches_naive<double>(1e-14); }

// Changing x[b, t0, e] moves pre[b, t, e] by exactly w[e, K−1−(t−t0)] for t in t0..t0+K−1 and
// changes nothing else: causal, depthwise, and w[e, K−1] on the current token.
TEST(ConvSilu, CausalAndDepthwise) {
  Conv c(2, 9, 3, 4, 20);
  std::vector<double> pre0;
  const std::vector<double> u0 = c.forward<double>(&pre0);
  const int64_t b = 1, e = 2;
  for (int64_t t0 = 0; t0 < c.S; ++t0) {
    Conv moved = c;
    moved.x[(b * c.S + t0) * c.E + e] += 1.0;
    std::vector<double> pre1;
    const std::vector<double> u1 = moved.forward<double>(&pre1);
    for (int64_t bb = 0; bb < c.B; ++bb)
      for (int64_t t = 0; t < c.S; ++t)
        for (int64_t ee = 0; ee < c.E; ++ee) {
          const int64_t i = (bb * c.S + t) * c.E + ee;
          const bool reached = bb == b && ee == e && t >= t0 && t < t0 + c.K;
          if (reached) {
            EXPECT_NEAR(pre1[i] - pre0[i], c.w[e * c.K + (c.K - 1 - (t - t0))], 1e-12)
                << "t0=" << t0 << " t=" << t;
            EXPECT_NE(u1[i], u0[i]) << "t0=" << t0 << " t=" << t;
          } else {
            EXPECT_EQ(u1[i], u0[i]) << "t0=" << t0 << " t=" << t << " b=" << bb << " e=" << ee;
          }
        }
  }
}

void check_conv_gradients(int64_t B, int64_t S, int64_t E, int64_t K) {
  SCOPED_TRACE(testing::Message() << "B=" << B << " S=" << S << " E=" << E << " K=" << K);
  Conv c(B, S, E, K, 100 * S + E + K);
  const std::vector<double> r = random_vector(B * S * E, 7);  // [B, S, E] probe dL/du
  Conv::Grads g = c.fresh_grads();
  c.backward(r, &g);
  expect_gaps_untouched(g.dx_wide, B * S, E, c.lddx(), kDxCol);
  const std::vector<double> dx = extract(g.dx_wide, B * S, E, c.lddx(), kDxCol);
  test::check_gradients({{"x", &c.x, &dx}, {"w", &c.w, &g.dw}, {"bias", &c.bias, &g.dbias}},
                        [&] { return test::dot(c.forward<double>(), r); });
}

TEST(ConvSilu, GradientsSingleToken) { check_conv_gradients(1, 1, 5, 4); }
TEST(ConvSilu, GradientsShorterThanKernel) { check_conv_gradients(2, 2, 5, 4); }
TEST(ConvSilu, GradientsS7) { check_conv_gradients(2, 7, 5, 4); }
TEST(ConvSilu, GradientsS33) { check_conv_gradients(2, 33, 5, 4); }
TEST(ConvSilu, GradientsOtherKernelSizes) {
  check_conv_gradients(1, 7, 3, 2);
  check_conv_gradients(2, 6, 5, 1);
}

// dw and dbias accumulate (+=) so micro-batch gradient accumulation is free; dx is written (=).
TEST(ConvSilu, BackwardAccumulatesParamGradsOnly) {
  const Conv c(2, 7, 5, 4, 30);
  const std::vector<double> r = random_vector(2 * 7 * 5, 8);
  Conv::Grads g = c.fresh_grads();
  c.backward(r, &g);
  const Conv::Grads once = g;
  c.backward(r, &g);
  EXPECT_EQ(g.dx_wide, once.dx_wide);
  // The second call adds term by term onto the first sum, so doubling holds up to rounding.
  for (size_t i = 0; i < g.dw.size(); ++i) EXPECT_NEAR(g.dw[i], 2 * once.dw[i], 1e-12);
  for (size_t i = 0; i < g.dbias.size(); ++i) EXPECT_NEAR(g.dbias[i], 2 * once.dbias[i], 1e-12);
}

// Each channel's dw and dbias are summed in the same order whatever the thread count.
TEST(ConvSilu, BackwardIndependentOfThreadCount) {
  const Conv c(2, 11, 7, 4, 40);
  const std::vector<double> r = random_vector(2 * 11 * 7, 9);
  const int saved = omp_get_max_threads();
  Conv::Grads g1 = c.fresh_grads(), g3 = c.fresh_grads();
  omp_set_num_threads(1);
  c.backward(r, &g1);
  omp_set_num_threads(3);
  c.backward(r, &g3);
  omp_set_num_threads(saved);
  EXPECT_EQ(g1.dx_wide, g3.dx_wide);
  EXPECT_EQ(g1.dw, g3.dw);
  EXPECT_EQ(g1.dbias, g3.dbias);
}

}  // namespace
}  // namespace hymba::cpu
