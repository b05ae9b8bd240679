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

  // Optional features: an initial state, document resets, a probe of the final state.
  std::vector<double> h0;          // [B, E, N] or empty
  std::vector<uint8_t> doc_start;  // [B, S] or empty

  void use_initial_state(uint64_t seed) { h0 = random_vector(s.B * s.E * s.N, seed); }
  void reset_at(std::initializer_list<int64_t> tokens) {
    doc_start.assign(s.B * s.S, 0);
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t t : tokens)
        if (t < s.S) doc_start[b * s.S + t] = 1;
  }

  // Tokens [t0, t0 + len) of every batch row as a scan of their own: same parameters, no initial
  // state, no resets.
  Scan slice(int64_t t0, int64_t len) const {
    Scan part = *this;
    part.s.S = len;
    part.h0.clear();
    part.doc_start.clear();
    const auto take = [&](const std::vector<double>& v, int64_t width, std::vector<double>* dst) {
      dst->clear();
      for (int64_t b = 0; b < s.B; ++b)
        dst->insert(dst->end(), v.begin() + (b * s.S + t0) * width, v.begin() + (b * s.S + t0 + len) * width);
    };
    take(u, s.E, &part.u);
    take(delta, s.E, &part.delta);
    take(z, s.E, &part.z);
    take(Bm, s.N, &part.Bm);
    take(Cm, s.N, &part.Cm);
    return part;
  }

  template <class T>
  ScanInputs<T> inputs(const std::vector<std::vector<T>>& c, const std::vector<T>& zw) const {
    return {c[0].data(), c[1].data(), zw.data() + kZCol, ldz(),
            c[2].data(), c[3].data(), c[4].data(),        c[5].data(),
            c[6].data(), h0.empty() ? nullptr : c[7].data(),
            doc_start.empty() ? nullptr : doc_start.data()};
  }

  // The operands cast to T: u, delta, Bm, Cm, dt_bias, A_log, D, h0.
  template <class T>
  std::vector<std::vector<T>> cast_operands() const {
    return {cast_vector<T>(u),  cast_vector<T>(delta),   cast_vector<T>(Bm),
            cast_vector<T>(Cm), cast_vector<T>(dt_bias), cast_vector<T>(A_log),
            cast_vector<T>(D),  cast_vector<T>(h0)};
  }

  // The kernel in T, with z embedded at stride ldz: out [B, S, E], and hT [B, E, N] if asked.
  template <class T>
  std::vector<T> forward(std::vector<T>* hT = nullptr) const {
    const auto c = cast_operands<T>();
    const std::vector<T> zw = cast_vector<T>(embed(z, rows(), s.E, ldz(), kZCol));  // [B, S, ldz]
    std::vector<T> out(n_bse());                                                     // [B, S, E]
    if (hT) hT->assign(s.B * s.E * s.N, T(0));
    selective_scan_forward<T>(out.data(), hT ? hT->data() : nullptr, inputs<T>(c, zw), s);
    return out;
  }

  struct Grads {
    std::vector<double> du, ddelta, dz_wide, dBm, dCm;  // written (=); dz_wide [B, S, lddz]
    std::vector<double> ddt_bias, dA_log, dD;           // accumulated (+=)
    std::vector<double> dh0;                            // written (=) [B, E, N]
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
            std::vector<double>(s.E, 0.0),
            junk(s.B * s.E * s.N, 96)};
  }

  // The backward in double with dout = r and dhT = rT (or none), into g.
  void backward(const std::vector<double>& r, Grads* g, const std::vector<double>* rT = nullptr) const {
    const auto c = cast_operands<double>();
    const std::vector<double> zw = embed(z, rows(), s.E, ldz(), kZCol);
    const ScanGrads<double> grads{g->du.data(),       g->ddelta.data(), g->dz_wide.data() + kDzCol,
                                  lddz(),             g->dBm.data(),    g->dCm.data(),
                                  g->ddt_bias.data(), g->dA_log.data(), g->dD.data(),
                                  g->dh0.data()};
    selective_scan_backward<double>(grads, r.data(), rT ? rT->data() : nullptr, inputs<double>(c, zw), s);
  }
};

// The header's recurrence as a direct loop with an explicit state array, in double.
std::vector<double> naive_scan(const Scan& p) {
  const auto [B, S, E, N] = p.s;
  std::vector<double> h = p.h0.empty() ? std::vector<double>(B * E * N, 0.0) : p.h0;  // [B, E, N]
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
          const bool reset = !p.doc_start.empty() && p.doc_start[b * S + t];
          hn = (reset ? 0.0 : std::exp(dt * A)) * hn + dt * p.Bm[(b * S + t) * N + n] * p.u[i];
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

TEST(SelectiveScan, ForwardWithInitialStateAndResetsMatchesNaive) {
  Scan p({2, 19, 5, 7}, 15);
  p.use_initial_state(16);
  p.reset_at({3, 4, 11, 18});
  const std::vector<double> ref = naive_scan(p), out = p.forward<double>();
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(out[i], ref[i], 1e-13) << "i=" << i;
}
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

// The loss probes out with r and, when the scan has an initial state, the final state with rT,
// so dh0 and the dhT input are checked along with every other gradient.
void check_scan_gradients(const Scan& p0) {
  SCOPED_TRACE(testing::Message() << "B=" << p0.s.B << " S=" << p0.s.S << " E=" << p0.s.E
                                  << " N=" << p0.s.N << " h0=" << !p0.h0.empty()
                                  << " resets=" << !p0.doc_start.empty());
  Scan p = p0;
  const bool with_state = !p.h0.empty();
  const std::vector<double> r = random_vector(p.n_bse(), 7);             // [B, S, E] dL/dout
  const std::vector<double> rT = random_vector(p.s.B * p.s.E * p.s.N, 8);  // [B, E, N] dL/dhT
  Scan::Grads g = p.fresh_grads();
  p.backward(r, &g, with_state ? &rT : nullptr);
  expect_gaps_untouched(g.dz_wide, p.rows(), p.s.E, p.lddz(), kDzCol);
  const std::vector<double> dz = extract(g.dz_wide, p.rows(), p.s.E, p.lddz(), kDzCol);
  const auto loss = [&] {
    std::vector<double> hT;
    const double l = test::dot(p.forward<double>(&hT), r);
    return with_state ? l + test::dot(hT, rT) : l;
  };
  const std::vector<test::GradInput> inputs = {{"u", &p.u, &g.du},
                                         {"delta", &p.delta, &g.ddelta},
                                         {"dt_bias", &p.dt_bias, &g.ddt_bias},
                                         {"Bm", &p.Bm, &g.dBm},
                                         {"Cm", &p.Cm, &g.dCm},
                                         {"D", &p.D, &g.dD},
                                         {"z", &p.z, &dz}};
  test::check_gradients(inputs, loss);
  // A only scales the previous state, which is zero at the first token: with S = 1 and no
  // initial state its gradient is legitimately zero.
  test::GradCheckOptions opt;
  opt.require_nonzero = p.s.S > 1 || with_state;
  test::check_gradients({{"A_log", &p.A_log, &g.dA_log}}, loss, opt);
  // h0 reaches nothing when every row starts a document at token 0: then dh0 must be zero.
  test::GradCheckOptions opt_h0;
  opt_h0.require_nonzero = p.doc_start.empty() || !p.doc_start[0] || !p.doc_start[(p.s.B - 1) * p.s.S];
  if (with_state) {
    test::check_gradients({{"h0", &p.h0, &g.dh0}}, loss, opt_h0);
  } else {  // dL/dh0 at h0 = 0 is still defined: check it with an explicit zero h0
    Scan q = p0;
    q.h0.assign(q.s.B * q.s.E * q.s.N, 0.0);
    Scan::Grads gq = q.fresh_grads();
    q.backward(r, &gq);
    EXPECT_EQ(gq.dh0, g.dh0);  // a null h0 is a zero h0
    const auto loss_q = [&] { return test::dot(q.forward<double>(), r); };
    test::check_gradients({{"h0", &q.h0, &gq.dh0}}, loss_q, opt_h0);
  }
}

TEST(SelectiveScan, GradientsSingleToken) { check_scan_gradients(Scan({1, 1, 5, 3}, 40)); }
TEST(SelectiveScan, GradientsS7) { check_scan_gradients(Scan({2, 7, 5, 16}, 41)); }
TEST(SelectiveScan, GradientsS33) { check_scan_gradients(Scan({2, 33, 5, 3}, 42)); }
TEST(SelectiveScan, GradientsS33N16) { check_scan_gradients(Scan({1, 33, 3, 16}, 43)); }

TEST(SelectiveScan, GradientsWithInitialState) {
  for (const ScanShape& s : {ScanShape{1, 1, 5, 3}, ScanShape{2, 9, 5, 16}}) {
    Scan p(s, 45);
    p.use_initial_state(46);
    check_scan_gradients(p);
  }
}

// Resets at the first token (h0 is dropped), adjacent ones, and at the last token.
TEST(SelectiveScan, GradientsWithResets) {
  Scan p({2, 13, 5, 4}, 47);
  p.reset_at({0, 5, 6, 12});
  check_scan_gradients(p);
  p.use_initial_state(48);
  check_scan_gradients(p);
  p.reset_at({4});  // h0 reaches the first document only
  check_scan_gradients(p);
}

// A document start cuts the rows in two: the part from the start equals a scan of that part alone
// from a zero state, out and final state alike, and the part before it is a scan of its own.
TEST(SelectiveScan, ResetSplitsIntoIndependentScans) {
  const int64_t S = 17, cut = 6, E = 4;
  Scan whole({2, S, E, 5}, 49);
  whole.use_initial_state(50);
  whole.reset_at({cut});
  std::vector<double> hT, hT_tail;
  const std::vector<double> out = whole.forward<double>(&hT);
  Scan head = whole.slice(0, cut);
  head.h0 = whole.h0;
  const std::vector<double> out_head = head.forward<double>();
  const std::vector<double> out_tail = whole.slice(cut, S - cut).forward<double>(&hT_tail);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < S; ++t)
      for (int64_t e = 0; e < E; ++e) {
        const double part = t < cut ? out_head[(b * cut + t) * E + e] : out_tail[(b * (S - cut) + t - cut) * E + e];
        EXPECT_DOUBLE_EQ(out[(b * S + t) * E + e], part) << "b=" << b << " t=" << t << " e=" << e;
      }
  EXPECT_EQ(hT, hT_tail);
}

// Scanning [0, k) and then [k, S) from the first part's final state is the scan of [0, S): the
// forward through hT -> h0, and the backward through dh0 of the second part -> dhT of the first.
TEST(SelectiveScan, FinalStateChainsIntoInitialState) {
  const int64_t S = 15, k = 8, E = 3, N = 4;
  Scan whole({1, S, E, N}, 51);
  whole.use_initial_state(52);
  Scan head = whole.slice(0, k), tail = whole.slice(k, S - k);
  head.h0 = whole.h0;
  std::vector<double> hT, hT_head, hT_tail;
  const std::vector<double> out = whole.forward<double>(&hT);
  const std::vector<double> out_head = head.forward<double>(&hT_head);
  tail.h0 = hT_head;
  const std::vector<double> out_tail = tail.forward<double>(&hT_tail);
  for (int64_t i = 0; i < S * E; ++i)
    EXPECT_NEAR(out[i], i < k * E ? out_head[i] : out_tail[i - k * E], 1e-14) << i;
  for (size_t i = 0; i < hT.size(); ++i) EXPECT_NEAR(hT[i], hT_tail[i], 1e-14) << i;

  const std::vector<double> r = random_vector(S * E, 53), rT = random_vector(E * N, 54);
  const std::vector<double> r_head(r.begin(), r.begin() + k * E), r_tail(r.begin() + k * E, r.end());
  Scan::Grads g = whole.fresh_grads(), g_head = head.fresh_grads(), g_tail = tail.fresh_grads();
  whole.backward(r, &g, &rT);
  tail.backward(r_tail, &g_tail, &rT);
  head.backward(r_head, &g_head, &g_tail.dh0);
  for (size_t i = 0; i < g.dh0.size(); ++i) EXPECT_NEAR(g.dh0[i], g_head.dh0[i], 1e-13) << i;
  for (int64_t i = 0; i < S * E; ++i) {
    EXPECT_NEAR(g.du[i], i < k * E ? g_head.du[i] : g_tail.du[i - k * E], 1e-13) << i;
    EXPECT_NEAR(g.ddelta[i], i < k * E ? g_head.ddelta[i] : g_tail.ddelta[i - k * E], 1e-13) << i;
  }
  for (int64_t i = 0; i < E * N; ++i)
    EXPECT_NEAR(g.dA_log[i], g_head.dA_log[i] + g_tail.dA_log[i], 1e-12) << i;
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
  EXPECT_EQ(g.dh0, once.dh0);
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
