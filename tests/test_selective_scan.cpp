// Mamba-1 selective scan (kernels/cpu/selective_scan.h).
#include "cpu/selective_scan.h"

#include <gtest/gtest.h>
#include <omp.h>

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

// z and dz are column slices of wider rows (see strided.h): these are their columns.
constexpr int64_t kZCol = 1, kDzCol = 2;

// One scan problem in double. The values stay where the recurrence matters: Δ = softplus(delta
// + dt_bias) in about [0.03, 1.7] and A = −(1..N) up to noise, so exp(ΔA) ranges from near 1
// (long memory) to near 0.
struct Scan {
  ScanShape s;
  std::vector<double> u, delta, dt_bias, A_log, Bm, Cm, D, z;  // z [B, S, E] compact

  Scan(ScanShape shape, uint64_t seed)
      : s(shape), u(random_vector(n_bse(), seed)),
        delta(random_vector(n_bse(), seed + 1, 2.0)), dt_bias(random_vector(s.E, seed + 2, 0.5)),
        A_log(random_vector(s.E * s.N, seed + 3, 0.1)), Bm(random_vector(n_bsn(), seed + 4)),
        Cm(random_vector(n_bsn(), seed + 5)), D(random_vector(s.E, seed + 6)),
        z(random_vector(n_bse(), seed + 7, 2.0)) {
    for (double& d : delta) d -= 1.0;  // [-3, 1]
    for (int64_t e = 0; e < s.E; ++e)
      for (int64_t n = 0; n < s.N; ++n) A_log[e * s.N + n] += std::log(double(n + 1));
  }

  int64_t n_bse() const { return s.B * s.S * s.E; }
  int64_t n_bsn() const { return s.B * s.S * s.N; }
  int64_t rows() const { return s.B * s.S; }
  int64_t ldz() const { return s.E + 3; }
  int64_t lddz() const { return s.E + 4; }

  // The kernel in T, with z embedded at stride ldz.
  template <class T>
  std::vector<T> forward() const {
    const auto c = [](const std::vector<double>& v) { return cast_vector<T>(v); };
    const std::vector<T> zw = c(embed(z, rows(), s.E, ldz(), kZCol));  // [B, S, ldz]
    std::vector<T> out(n_bse());                                        // [B, S, E]
    selective_scan_forward<T>(out.data(), c(u).data(), c(delta).data(), c(dt_bias).data(),
                              c(A_log).data(), c(Bm).data(), c(Cm).data(), c(D).data(),
                              zw.data() + kZCol, ldz(), s);
    return out;
  }

  struct Grads {
    std::vector<double> du, ddelta, dz_wide, dBm, dCm;  // written (=); dz_wide [B, S, lddz]
    std::vector<double> ddt_bias, dA_log, dD;           // accumulated (+=)
  };

  // Written outputs start as junk (they must be overwritten), accumulated ones as zero.
  Grads fresh_grads() const {
    const auto junk = [](int64_t n, uint64_t seed) { return random_vector(n, seed, 1e3); };
    return {junk(n_bse(), 91),
            junk(n_bse(), 92),
            embed(junk(n_bse(), 93), rows(), s.E, lddz(), kDzCol),
            junk(n_bsn(), 94),
            junk(n_bsn(), 95),
            std::vector<double>(s.E, 0.0),
            std::vector<double>(s.E * s.N, 0.0),
            std::vector<double>(s.E, 0.0)};
  }

  // The backward in double with dout = r, into g.
  void backward(const std::vector<double>& r, Grads* g) const {
    const std::vector<double> zw = embed(z, rows(), s.E, ldz(), kZCol);
    selective_scan_backward<double>(g->du.data(), g->ddelta.data(), g->dz_wide.data() + kDzCol,
                                    lddz(), g->dBm.data(), g->dCm.data(), g->ddt_bias.data(),
                                    g->dA_log.data(), g->dD.data(), r.data(), u.data(),
                                    delta.data(), dt_bias.data(), A_log.data(), Bm.data(),
                                    Cm.data(), D.data(), zw.data() + kZCol, ldz(), s);
  }
};

// The header's recurrence as a direct loop with an explicit state array, in double.
std::vector<double> naive_scan(const Scan& p) {
  const auto [B, S, E, N] = p.s;
  std::vector<double> h(B * E * N, 0.0);  // [B, E, N]
  std::vector<double> out(B * S * E);     // [B, S, E]
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < S; ++t)
      for (int64_t e = 0; e < E; ++e) {
        const int64_t i = (b * S + t) * E + e;
        const double x = p.delta[i] + p.dt_bias[e];
        const double dt = x > 20 ? x : std::log(1 + std::exp(x));
        double y = p.D[e] * p.u[i];
        for (int64_t n = 0; n < N; ++n) {
          const double A = -std::exp(p.A_log[e * N + n]);
          double& hn = h[(b * E + e) * N + n];
          hn = std::exp(dt * A) * hn + dt * p.Bm[(b * S + t) * N + n] * p.u[i];
          y += p.Cm[(b * S + t) * N + n] * hn;
        }
        out[i] = y * p.z[i] / (1 + std::exp(-p.z[i]));
      }
  return out;
}

template <class T>
void expect_forward_matches_naive(double rel_tol) {
  for (const ScanShape& s : {ScanShape{1, 1, 5, 3}, ScanShape{2, 7, 5, 16},
                             ScanShape{2, 33, 5, 3}, ScanShape{1, 40, 6, 16}}) {
    const Scan p(s, 10 + s.S);
    const std::vector<double> ref = naive_scan(p);
    const std::vector<T> out = p.forward<T>();
    double scale = 0;
    for (double v : ref) scale = std::max(scale, std::abs(v));
    for (size_t i = 0; i < ref.size(); ++i)
      ASSERT_NEAR(out[i], ref[i], rel_tol * scale) << "S=" << s.S << " N=" << s.N << " i=" << i;
  }
}

TEST(SelectiveScan, ForwardMatchesNaiveFloat) { expect_forward_matches_naive<float>(1e-5); }
TEST(SelectiveScan, ForwardMatchesNaiveDouble) { expect_forward_matches_naive<double>(1e-13); }

// Changing u[b, t0, e] changes out only at (b, t ≥ t0, e), and still at the last token: the
// state carries it forward, and the state starts from zero per (b, e).
TEST(SelectiveScan, StateCarriesForwardWithinItsChannel) {
  Scan p({2, 12, 3, 4}, 20);
  for (double& d : p.delta) d = -2.0;  // Δ ≈ 0.13: exp(ΔA) ≈ 0.9 for n = 0, long memory
  const std::vector<double> out0 = p.forward<double>();
  const int64_t b = 1, e = 1, S = p.s.S, E = p.s.E;
  for (int64_t t0 : {0, 5}) {
    Scan moved = p;
    moved.u[(b * S + t0) * E + e] += 1.0;
    const std::vector<double> out1 = moved.forward<double>();
    for (int64_t bb = 0; bb < p.s.B; ++bb)
      for (int64_t t = 0; t < S; ++t)
        for (int64_t ee = 0; ee < E; ++ee) {
          const int64_t i = (bb * S + t) * E + ee;
          if (bb != b || ee != e || t < t0) {
            EXPECT_EQ(out1[i], out0[i]) << "t0=" << t0 << " b=" << bb << " t=" << t << " e=" << ee;
          }
        }
    const int64_t last = (b * S + S - 1) * E + e;
    EXPECT_GT(std::abs(out1[last] - out0[last]), 1e-4) << "t0=" << t0;
  }
}

// With Δ ≈ 0 the state stays ≈ 0, so out = D·u·silu(z): pins the skip term and the gate.
TEST(SelectiveScan, ZeroStepLeavesSkipAndGate) {
  Scan p({2, 9, 5, 16}, 30);
  for (double& d : p.delta) d -= 40.0;  // softplus(−40) ≈ 4e−18
  const std::vector<double> out = p.forward<double>();
  for (int64_t i = 0; i < p.n_bse(); ++i) {
    const int64_t e = i % p.s.E;
    const double gate = p.z[i] / (1 + std::exp(-p.z[i]));
    ASSERT_NEAR(out[i], p.D[e] * p.u[i] * gate, 1e-14) << "i=" << i;
  }
}

void check_scan_gradients(const Scan& p0) {
  SCOPED_TRACE(testing::Message() << "B=" << p0.s.B << " S=" << p0.s.S << " E=" << p0.s.E
                                  << " N=" << p0.s.N);
  Scan p = p0;
  const std::vector<double> r = random_vector(p.n_bse(), 7);  // [B, S, E] probe dL/dout
  Scan::Grads g = p.fresh_grads();
  p.backward(r, &g);
  expect_gaps_untouched(g.dz_wide, p.rows(), p.s.E, p.lddz(), kDzCol);
  const std::vector<double> dz = extract(g.dz_wide, p.rows(), p.s.E, p.lddz(), kDzCol);
  const auto loss = [&] { return test::dot(p.forward<double>(), r); };
  test::check_gradients({{"u", &p.u, &g.du},
                         {"delta", &p.delta, &g.ddelta},
                         {"dt_bias", &p.dt_bias, &g.ddt_bias},
                         {"Bm", &p.Bm, &g.dBm},
                         {"Cm", &p.Cm, &g.dCm},
                         {"D", &p.D, &g.dD},
                         {"z", &p.z, &dz}},
                        loss);
  // A only scales the previous state, which is zero at the first token: with S = 1 its
  // gradient is legitimately zero.
  test::GradCheckOptions opt;
  opt.require_nonzero = p.s.S > 1;
  test::check_gradients({{"A_log", &p.A_log, &g.dA_log}}, loss, opt);
}

TEST(SelectiveScan, GradientsSingleToken) { check_scan_gradients(Scan({1, 1, 5, 3}, 40)); }
TEST(SelectiveScan, GradientsS7) { check_scan_gradients(Scan({2, 7, 5, 16}, 41)); }
TEST(SelectiveScan, GradientsS33) { check_scan_gradients(Scan({2, 33, 5, 3}, 42)); }
TEST(SelectiveScan, GradientsS33N16) { check_scan_gradients(Scan({1, 33, 3, 16}, 43)); }

// Channel 0 runs with delta + dt_bias in about [19, 23], across softplus's threshold at 20.
TEST(SelectiveScan, GradientsAcrossSoftplusThreshold) {
  Scan p({2, 7, 5, 3}, 44);
  p.dt_bias[0] = 22.0;
  check_scan_gradients(p);
}

// ddt_bias, dA_log and dD accumulate (+=) so micro-batch accumulation is free; the rest are
// written (=), including dBm and dCm, which the kernel sums over channels internally.
TEST(SelectiveScan, BackwardAccumulatesParamGradsOnly) {
  const Scan p({2, 7, 5, 3}, 50);
  const std::vector<double> r = random_vector(p.n_bse(), 8);
  Scan::Grads g = p.fresh_grads();
  p.backward(r, &g);
  const Scan::Grads once = g;
  p.backward(r, &g);
  EXPECT_EQ(g.du, once.du);
  EXPECT_EQ(g.ddelta, once.ddelta);
  EXPECT_EQ(g.dz_wide, once.dz_wide);
  EXPECT_EQ(g.dBm, once.dBm);
  EXPECT_EQ(g.dCm, once.dCm);
  for (int64_t e = 0; e < p.s.E; ++e) {
    EXPECT_NEAR(g.ddt_bias[e], 2 * once.ddt_bias[e], 1e-12);
    EXPECT_NEAR(g.dD[e], 2 * once.dD[e], 1e-12);
  }
  for (size_t i = 0; i < g.dA_log.size(); ++i) EXPECT_NEAR(g.dA_log[i], 2 * once.dA_log[i], 1e-12);
}

// The thread count changes only the rounding order of the dBm / dCm sums over channels.
TEST(SelectiveScan, BackwardIndependentOfThreadCount) {
  const Scan p({2, 9, 7, 5}, 60);
  const std::vector<double> r = random_vector(p.n_bse(), 9);
  const int saved = omp_get_max_threads();
  Scan::Grads g1 = p.fresh_grads(), g3 = p.fresh_grads();
  omp_set_num_threads(1);
  p.backward(r, &g1);
  omp_set_num_threads(3);
  p.backward(r, &g3);
  omp_set_num_threads(saved);
  EXPECT_EQ(g1.du, g3.du);
  EXPECT_EQ(g1.ddelta, g3.ddelta);
  EXPECT_EQ(g1.dz_wide, g3.dz_wide);
  EXPECT_EQ(g1.ddt_bias, g3.ddt_bias);
  EXPECT_EQ(g1.dA_log, g3.dA_log);
  EXPECT_EQ(g1.dD, g3.dD);
  for (int64_t i = 0; i < p.n_bsn(); ++i) {
    EXPECT_NEAR(g1.dBm[i], g3.dBm[i], 1e-13) << i;
    EXPECT_NEAR(g1.dCm[i], g3.dCm[i], 1e-13) << i;
  }
}

}  // namespace
}  // namespace hymba::cpu
