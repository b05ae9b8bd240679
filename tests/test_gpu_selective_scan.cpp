// The CUDA selective scan against the CPU reference (computed in double): forward (out, hT) and
// every backward output (du, ddelta, dz, dBm, dCm, ddt_bias, dA_log, dD, dh0), float (relative
// error below 1e-5) and bf16 (the bf16 rule), on random inputs. Shapes: the scan issue's lengths
// (1, 7, 128, 1000, 2176, 4224) and lengths around the kernels' 16- and 8-token sub-chunks,
// channel counts that are multiples of nothing and of the 4-channel packs, N = 0..32 (every lane
// layout: 4 states a lane on 1, 2, 4 or 8 lanes), with and without the initial state, the final
// state's gradient and document resets (at t = 0, in the middle, adjacent, at the last token),
// z and dz as column slices of wider rows (misaligned: the one-element path; aligned: the
// pack path). Each case also runs the backward without checkpoints (and without hT or dh0),
// which must give the same bits, and runs again for the same bits. Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "cpu/selective_scan.h"
#include "gpu_test.h"
#include "gradcheck.h"
#include "strided.h"

#ifdef HYMBA_HAVE_CUDA
#include "cuda/selective_scan.h"
#endif

namespace hymba::test {
namespace {

#ifdef HYMBA_HAVE_CUDA

using cpu::ScanShape;

// Every value rounded to fp32, so the double reference sees exactly the inputs the GPU gets.
std::vector<double> fp32_values(std::vector<double> v) {
  for (double& x : v) x = double(float(x));
  return v;
}

// What a case exercises besides the shape.
struct Options {
  bool h0 = false;       // an initial state
  bool dhT = false;      // a gradient arriving at the final state
  bool resets = false;   // document starts
  bool aligned = false;  // z and dz slices at pack-aligned offsets and strides
};

// One scan problem, values as in tests/test_selective_scan.cpp: Δ = softplus(delta + dt_bias) in
// about [0.03, 1.7] and A = −(1..N) up to noise, so exp(ΔA) runs from near 1 (long memory) to
// near 0.
struct Problem {
  ScanShape s;
  Options o;
  std::vector<double> u, delta, z, dout;  // [B, S, E] (z compact here)
  std::vector<double> Bm, Cm;             // [B, S, N]
  std::vector<double> dt_bias, D;         // [E]
  std::vector<double> A_log;              // [E, N]
  std::vector<double> h0, dhT;            // [B, E, N]
  std::vector<uint8_t> doc_start;         // [B, S]

  int64_t bse() const { return s.B * s.S * s.E; }
  int64_t bsn() const { return s.B * s.S * s.N; }
  int64_t ben() const { return s.B * s.E * s.N; }
  int64_t rows() const { return s.B * s.S; }
};

Problem make_problem(const ScanShape& s, const Options& o, uint64_t seed) {
  Problem p;
  p.s = s;
  p.o = o;
  const int64_t bse = s.B * s.S * s.E, bsn = s.B * s.S * s.N, ben = s.B * s.E * s.N;
  p.u = random_vector(bse, seed);
  p.delta = random_vector(bse, seed + 1, 2.0);
  for (double& d : p.delta) d -= 1.0;  // [-3, 1]
  p.z = random_vector(bse, seed + 2, 2.0);
  p.dout = random_vector(bse, seed + 3);
  p.Bm = random_vector(bsn, seed + 4);
  p.Cm = random_vector(bsn, seed + 5);
  p.dt_bias = random_vector(s.E, seed + 6, 0.5);
  p.D = random_vector(s.E, seed + 7);
  p.A_log = random_vector(s.E * s.N, seed + 8, 0.1);
  for (int64_t e = 0; e < s.E; ++e)
    for (int64_t n = 0; n < s.N; ++n) p.A_log[e * s.N + n] += std::log(double(n + 1));
  p.h0 = random_vector(ben, seed + 9);
  p.dhT = random_vector(ben, seed + 10);
  for (auto* v : {&p.u, &p.delta, &p.z, &p.dout, &p.Bm, &p.Cm, &p.dt_bias, &p.D, &p.A_log, &p.h0,
                  &p.dhT})
    *v = fp32_values(*v);
  // Resets: at t = 0 on even rows, in the middle and right after it (adjacent), at the last
  // token, and every 37 tokens from t = 3 (any nonzero byte counts).
  p.doc_start.assign(size_t(s.B * s.S), 0);
  if (o.resets && s.S > 0) {
    for (int64_t b = 0; b < s.B; ++b) {
      uint8_t* row = p.doc_start.data() + b * s.S;
      row[0] = b % 2 == 0;
      row[s.S / 2] = 1;
      if (s.S / 2 + 1 < s.S) row[s.S / 2 + 1] = 1;
      row[s.S - 1] = 1;
      for (int64_t t = 3; t < s.S; t += 37) row[t] = 7;
    }
  }
  return p;
}

// The activations rounded to bf16 (parameters and states stay fp32 in the bf16 kernel too).
Problem bf16_inputs(Problem p) {
  for (auto* v : {&p.u, &p.delta, &p.z, &p.dout, &p.Bm, &p.Cm}) *v = bf16_round(*v);
  return p;
}

// Start values of the accumulated (+=) parameter gradients: small, so the increments dominate.
struct ParamGrads {
  std::vector<double> ddt_bias, dA_log, dD;  // [E], [E, N], [E]
};

ParamGrads start_values(const ScanShape& s) {
  return {fp32_values(random_vector(s.E, 71, 0.05)),
          fp32_values(random_vector(s.E * s.N, 72, 0.05)),
          fp32_values(random_vector(s.E, 73, 0.05))};
}

struct Outputs {
  std::vector<double> out, du, ddelta, dz;  // [B, S, E] (dz compact here)
  std::vector<double> dBm, dCm;             // [B, S, N]
  std::vector<double> hT, dh0;              // [B, E, N]
  ParamGrads params;
};

// The CPU reference in double, z and dz compact.
Outputs reference(const Problem& p, const ParamGrads& start) {
  const ScanShape& s = p.s;
  Outputs r;
  r.out.assign(p.bse(), 0.0);
  r.du.assign(p.bse(), 0.0);
  r.ddelta.assign(p.bse(), 0.0);
  r.dz.assign(p.bse(), 0.0);
  r.dBm.assign(p.bsn(), 0.0);
  r.dCm.assign(p.bsn(), 0.0);
  r.hT.assign(p.ben(), 0.0);
  r.dh0.assign(p.ben(), 0.0);
  r.params = start;
  const cpu::ScanInputs<double> in{p.u.data(),       p.delta.data(), p.z.data(),
                                   s.E,              p.Bm.data(),    p.Cm.data(),
                                   p.dt_bias.data(), p.A_log.data(), p.D.data(),
                                   p.o.h0 ? p.h0.data() : nullptr,
                                   p.o.resets ? p.doc_start.data() : nullptr};
  cpu::selective_scan_forward<double>(r.out.data(), r.hT.data(), in, s);
  const cpu::ScanGrads<double> grads{r.du.data(),  r.ddelta.data(),          r.dz.data(),
                                     s.E,          r.dBm.data(),             r.dCm.data(),
                                     r.params.ddt_bias.data(), r.params.dA_log.data(),
                                     r.params.dD.data(), r.dh0.data()};
  cpu::selective_scan_backward<double>(grads, p.dout.data(), p.o.dhT ? p.dhT.data() : nullptr, in,
                                       s);
  return r;
}

// z and dz are columns [col, col + E) of wider rows: misaligned (the one-element path) or at
// column 0 with strides that are multiples of 8 elements, so with E a multiple of 4 (a pack: 8
// bytes in bf16, 16 in fp32) the pack path runs.
int64_t z_col(const Options& o) { return o.aligned ? 0 : 1; }
int64_t dz_col(const Options& o) { return o.aligned ? 0 : 2; }
int64_t ldz_of(const ScanShape& s, const Options& o) { return o.aligned ? s.E + 8 : s.E + 3; }
int64_t lddz_of(const ScanShape& s, const Options& o) { return o.aligned ? s.E + 16 : s.E + 5; }

// The inputs on the device.
template <class T>
struct DeviceInputs {
  DeviceArray<T> u, delta, z_wide, dout, Bm, Cm;  // z_wide [B, S, ldz]
  DeviceFloats dt_bias, A_log, D, h0, dhT;
  DeviceArray<uint8_t> doc_start;
  Options o;
  ScanShape s;
  explicit DeviceInputs(const Problem& p)
      : u(as<T>(p.u)),
        delta(as<T>(p.delta)),
        z_wide(as<T>(embed(p.z, p.rows(), p.s.E, ldz_of(p.s, p.o), z_col(p.o)))),
        dout(as<T>(p.dout)),
        Bm(as<T>(p.Bm)),
        Cm(as<T>(p.Cm)),
        dt_bias(cast_vector<float>(p.dt_bias)),
        A_log(cast_vector<float>(p.A_log)),
        D(cast_vector<float>(p.D)),
        h0(cast_vector<float>(p.h0)),
        dhT(cast_vector<float>(p.dhT)),
        doc_start(p.doc_start),
        o(p.o),
        s(p.s) {}
  cuda::ScanInputs<T> view() const {
    return {u.data(),       delta.data(), z_wide.data() + z_col(o), ldz_of(s, o), Bm.data(),
            Cm.data(),      dt_bias.data(), A_log.data(),           D.data(),
            o.h0 ? h0.data() : nullptr, o.resets ? doc_start.data() : nullptr};
  }
};

// One forward and one backward on the GPU, outputs as the kernels left them (bits). Written
// outputs start as NaN so a missed element shows, as do the checkpoints and the workspace so a
// slot read before it is written shows; dz's gap columns start as kGap and must keep it.
template <class T>
struct GpuRun {
  std::vector<T> out, du, ddelta, dz_wide, dBm, dCm;  // dz_wide [B, S, lddz]
  std::vector<float> hT, dh0, checkpoints;
  std::vector<float> ddt_bias, dA_log, dD;
};

// full: forward with hT and checkpoints, backward with the checkpoints and dh0. Otherwise the
// forward without hT or checkpoints and the backward without checkpoints (it makes its own) or
// dh0: the outputs both have must have the same bits.
template <class T>
GpuRun<T> run_gpu(const Problem& p, const DeviceInputs<T>& in, const ParamGrads& start,
                  bool full) {
  const ScanShape& s = p.s;
  const int64_t lddz = lddz_of(s, p.o);
  const std::vector<double> nan_bse(p.bse(), std::nan(""));
  DeviceArray<T> out(std::vector<T>(p.bse(), nan_of<T>()));
  DeviceArray<T> du(std::vector<T>(p.bse(), nan_of<T>()));
  DeviceArray<T> ddelta(std::vector<T>(p.bse(), nan_of<T>()));
  DeviceArray<T> dz_wide(as<T>(embed(nan_bse, p.rows(), s.E, lddz, dz_col(p.o))));
  DeviceArray<T> dBm(std::vector<T>(p.bsn(), nan_of<T>()));
  DeviceArray<T> dCm(std::vector<T>(p.bsn(), nan_of<T>()));
  DeviceFloats hT(std::vector<float>(p.ben(), std::nanf("")));
  DeviceFloats dh0(std::vector<float>(p.ben(), std::nanf("")));
  DeviceFloats ckpt(
      std::vector<float>(cuda::selective_scan_checkpoint_floats(s), std::nanf("")));
  DeviceFloats ddt_bias(cast_vector<float>(start.ddt_bias));
  DeviceFloats dA_log(cast_vector<float>(start.dA_log)), dD(cast_vector<float>(start.dD));
  DeviceFloats work(std::vector<float>(cuda::selective_scan_backward_workspace(s), std::nanf("")));

  const cuda::ScanInputs<T> x = in.view();
  cuda::selective_scan_forward<T>(out.data(), full ? hT.data() : nullptr,
                                  full ? ckpt.data() : nullptr, x, s, nullptr);
  const cuda::ScanGrads<T> grads{du.data(),       ddelta.data(),  dz_wide.data() + dz_col(p.o),
                                 lddz,            dBm.data(),     dCm.data(),
                                 ddt_bias.data(), dA_log.data(),  dD.data(),
                                 full ? dh0.data() : nullptr};
  cuda::selective_scan_backward<T>(grads, in.dout.data(), p.o.dhT ? in.dhT.data() : nullptr, x,
                                   full ? ckpt.data() : nullptr, s, work.data(), nullptr);
  return {out.to_host(), du.to_host(),  ddelta.to_host(),   dz_wide.to_host(),
          dBm.to_host(), dCm.to_host(), hT.to_host(),       dh0.to_host(),
          ckpt.to_host(), ddt_bias.to_host(), dA_log.to_host(), dD.to_host()};
}

template <class T>
void check_scan(const ScanShape& s, const Options& o = {}) {
  SCOPED_TRACE(testing::Message() << (std::is_same_v<T, float> ? "float" : "bf16") << " B=" << s.B
                                  << " S=" << s.S << " E=" << s.E << " N=" << s.N << " h0=" << o.h0
                                  << " dhT=" << o.dhT << " resets=" << o.resets
                                  << " aligned=" << o.aligned);
  const Problem p = make_problem(s, o, uint64_t(1000 * s.S + 10 * s.E + s.N));
  const ParamGrads start = start_values(s);
  const Outputs exact = reference(p, start);

  const DeviceInputs<T> in(p);
  const GpuRun<T> run = run_gpu<T>(p, in, start, /*full=*/true);

  // dz: the gap columns keep their value, the slice holds the gradient.
  const int64_t lddz = lddz_of(s, o);
  const std::vector<double> dz_wide = to_double(run.dz_wide);
  const double gap = to_double(as<T>({kGap}))[0];
  for (int64_t r = 0; r < p.rows(); ++r) {
    for (int64_t c = 0; c < lddz; ++c) {
      if (c < dz_col(o) || c >= dz_col(o) + s.E) {
        ASSERT_EQ(dz_wide[r * lddz + c], gap) << "dz gap written: row " << r << ", column " << c;
      }
    }
  }
  const std::vector<double> dz = extract(dz_wide, p.rows(), s.E, lddz, dz_col(o));

  struct Check {
    const char* name;
    std::vector<double> gpu;
    const std::vector<double>* exact;
    const std::vector<double>* naive;
  };
  Outputs naive;
  if constexpr (!std::is_same_v<T, float>) naive = reference(bf16_inputs(p), start);
  const std::vector<Check> checks = {
      {"out", to_double(run.out), &exact.out, &naive.out},
      {"hT", to_double(run.hT), &exact.hT, &naive.hT},
      {"du", to_double(run.du), &exact.du, &naive.du},
      {"ddelta", to_double(run.ddelta), &exact.ddelta, &naive.ddelta},
      {"dz", dz, &exact.dz, &naive.dz},
      {"dBm", to_double(run.dBm), &exact.dBm, &naive.dBm},
      {"dCm", to_double(run.dCm), &exact.dCm, &naive.dCm},
      {"ddt_bias", to_double(run.ddt_bias), &exact.params.ddt_bias, &naive.params.ddt_bias},
      {"dA_log", to_double(run.dA_log), &exact.params.dA_log, &naive.params.dA_log},
      {"dD", to_double(run.dD), &exact.params.dD, &naive.params.dD},
      {"dh0", to_double(run.dh0), &exact.dh0, &naive.dh0},
  };
  for (const Check& c : checks) {
    ASSERT_EQ(c.gpu.size(), c.exact->size()) << c.name;
    for (size_t i = 0; i < c.gpu.size(); ++i) {
      ASSERT_FALSE(std::isnan(c.gpu[i])) << c.name << " not written at " << i;
    }
    if constexpr (std::is_same_v<T, float>) {
      EXPECT_LT(max_relative_error(c.gpu, *c.exact), 1e-5) << c.name;
    } else {
      expect_within_bf16_rule(c.gpu, *c.exact, *c.naive, c.name);
    }
  }

  // Without hT, checkpoints or dh0 (the backward computes the checkpoints itself, with the
  // forward kernel): the same bits.
  const GpuRun<T> bare = run_gpu<T>(p, in, start, /*full=*/false);
  EXPECT_TRUE(same_bits(bare.out, run.out)) << "out without checkpoints";
  EXPECT_TRUE(same_bits(bare.du, run.du)) << "du without checkpoints";
  EXPECT_TRUE(same_bits(bare.ddelta, run.ddelta)) << "ddelta without checkpoints";
  EXPECT_TRUE(same_bits(bare.dz_wide, run.dz_wide)) << "dz without checkpoints";
  EXPECT_TRUE(same_bits(bare.dBm, run.dBm)) << "dBm without checkpoints";
  EXPECT_TRUE(same_bits(bare.dCm, run.dCm)) << "dCm without checkpoints";
  EXPECT_TRUE(same_bits(bare.ddt_bias, run.ddt_bias)) << "ddt_bias without checkpoints";
  EXPECT_TRUE(same_bits(bare.dA_log, run.dA_log)) << "dA_log without checkpoints";
  EXPECT_TRUE(same_bits(bare.dD, run.dD)) << "dD without checkpoints";

  // Same inputs, same bits: every cross-thread sum has a fixed order.
  const GpuRun<T> again = run_gpu<T>(p, in, start, /*full=*/true);
  EXPECT_TRUE(same_bits(again.out, run.out)) << "out";
  EXPECT_TRUE(same_bits(again.hT, run.hT)) << "hT";
  EXPECT_TRUE(same_bits(again.checkpoints, run.checkpoints)) << "checkpoints";
  EXPECT_TRUE(same_bits(again.du, run.du)) << "du";
  EXPECT_TRUE(same_bits(again.ddelta, run.ddelta)) << "ddelta";
  EXPECT_TRUE(same_bits(again.dz_wide, run.dz_wide)) << "dz";
  EXPECT_TRUE(same_bits(again.dBm, run.dBm)) << "dBm";
  EXPECT_TRUE(same_bits(again.dCm, run.dCm)) << "dCm";
  EXPECT_TRUE(same_bits(again.ddt_bias, run.ddt_bias)) << "ddt_bias";
  EXPECT_TRUE(same_bits(again.dA_log, run.dA_log)) << "dA_log";
  EXPECT_TRUE(same_bits(again.dD, run.dD)) << "dD";
  EXPECT_TRUE(same_bits(again.dh0, run.dh0)) << "dh0";
}

struct Case {
  ScanShape s;
  Options o;
};

constexpr Options kPlain{};
constexpr Options kAll{true, true, true, false};          // h0, dhT, resets; misaligned slices
constexpr Options kAllAligned{true, true, true, true};    // the same on the pack path
constexpr Options kAligned{false, false, false, true};

// {B, S, E, N}. S around the sub-chunks (16 tokens; 8 for N <= 8) and the lengths; E
// around the 4-channel packs and the blocks' channels (64; 32 for N > 16); N over every lane
// layout (N <= 4, 8, 16, 32) and N = 0.
const Case kFloatCases[] = {
    {{1, 1, 5, 1}, kPlain},           {{2, 7, 37, 5}, kAll},
    {{3, 128, 33, 16}, kPlain},       {{1, 65, 70, 16}, kAll},
    {{2, 130, 45, 1}, kAll},          {{3, 300, 100, 4}, kAligned},
    {{1, 300, 65, 32}, kAll},         {{2, 129, 1, 3}, kAll},
    {{1, 16, 64, 16}, kAllAligned},   {{2, 7, 5, 0}, kAll},
    {{2, 33, 64, 8}, kAllAligned},    {{1, 128, 72, 24}, kAligned},
    {{2, 17, 40, 32}, kAllAligned},   {{2, 500, 200, 16}, kAllAligned},
    {{2, 70, 130, 12}, {true, false, false, false}},
    {{1, 45, 96, 7}, {false, true, true, true}},
};
const Case kBf16Cases[] = {
    {{1, 7, 37, 4}, kPlain},        {{2, 130, 45, 16}, kAll},        {{1, 65, 33, 20}, kAll},
    {{3, 300, 100, 4}, kAligned},   {{2, 500, 200, 16}, kAllAligned}, {{1, 128, 64, 32}, kAllAligned},
    {{2, 40, 96, 5}, kAllAligned},  {{2, 9, 64, 1}, kAllAligned},     {{2, 7, 5, 0}, kAll},
};

// The scan issue's lengths: one row of meta + text tokens (2176), about half (1000) and twice
// (4224), on a few channels so the double reference stays quick.
const Case kLongCases[] = {
    {{1, 1000, 40, 16}, kAll},
    {{2, 2176, 19, 16}, kPlain},
    {{1, 2176, 64, 16}, kAllAligned},
    {{1, 4224, 33, 16}, kAll},
};

#endif  // HYMBA_HAVE_CUDA

TEST(GpuSelectiveScan, LongSequencesMatchTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const Case& c : kLongCases) {
    check_scan<float>(c.s, c.o);
    check_scan<bf16>(c.s, c.o);
  }
#endif
}

TEST(GpuSelectiveScan, FloatMatchesTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const Case& c : kFloatCases) check_scan<float>(c.s, c.o);
#endif
}

TEST(GpuSelectiveScan, Bf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const Case& c : kBf16Cases) check_scan<bf16>(c.s, c.o);
#endif
}

TEST(GpuSelectiveScan, EmptyAndInvalidSizes) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  const std::vector<float> ones(64, 1.0f);
  std::vector<float> ramp(64);
  for (int i = 0; i < 64; ++i) ramp[i] = 0.5f + float(i);
  DeviceFloats a(ones), b(ones), c(ones), d(ones), w(ones), h(ramp), st(ones), g(ones);
  float* f = a.data();
  const auto inputs = [&](int64_t ldz) {
    return cuda::ScanInputs<float>{f, f, f, ldz, f, f, f, f, f, h.data(), nullptr};
  };
  const auto forward = [&](const ScanShape& s, int64_t ldz) {
    cuda::selective_scan_forward<float>(b.data(), st.data(), nullptr, inputs(ldz), s, nullptr);
  };
  const auto backward = [&](const ScanShape& s, int64_t ldz, int64_t lddz) {
    const cuda::ScanGrads<float> grads{b.data(), b.data(), b.data(), lddz, c.data(),
                                       d.data(), b.data(), b.data(), b.data(), g.data()};
    cuda::selective_scan_backward<float>(grads, f, h.data(), inputs(ldz), nullptr, s, w.data(),
                                         nullptr);
  };
  // No batch rows: nothing written, nothing added.
  forward({0, 4, 3, 2}, 3);
  backward({0, 4, 3, 2}, 3, 3);
  EXPECT_EQ(b.to_host(), ones);
  EXPECT_EQ(c.to_host(), ones);
  EXPECT_EQ(st.to_host(), ones);
  EXPECT_EQ(g.to_host(), ones);
  // No tokens: the final state is the initial one, dh0 is dhT; dBm, dCm [2, 0, 2] are empty and
  // the parameter gradients get nothing (+= 0).
  forward({2, 0, 3, 2}, 3);
  backward({2, 0, 3, 2}, 3, 3);
  for (const std::vector<float>& v : {st.to_host(), g.to_host()}) {
    for (int i = 0; i < 64; ++i) EXPECT_EQ(v[i], i < 12 ? ramp[i] : 1.0f) << i;
  }
  EXPECT_EQ(b.to_host(), ones);
  EXPECT_EQ(c.to_host(), ones);
  // No channels: dBm and dCm [2, 3, 4] are sums over nothing, so zero; the rest is empty.
  forward({2, 3, 0, 4}, 0);
  backward({2, 3, 0, 4}, 0, 0);
  for (const std::vector<float>& v : {c.to_host(), d.to_host()}) {
    for (int i = 0; i < 64; ++i) EXPECT_EQ(v[i], i < 24 ? 0.0f : 1.0f) << i;
  }
  EXPECT_EQ(b.to_host(), ones);
  // N above 32, a z or dz stride below E, B above 65535 and negative sizes are refused.
  EXPECT_THROW(forward({1, 2, 3, 33}, 3), Error);
  EXPECT_THROW(backward({1, 2, 3, 33}, 3, 3), Error);
  EXPECT_THROW((void)cuda::selective_scan_backward_workspace({1, 2, 3, 33}), Error);
  EXPECT_THROW((void)cuda::selective_scan_checkpoint_floats({1, 2, 3, 33}), Error);
  EXPECT_THROW(forward({1, 2, 3, 4}, 2), Error);
  EXPECT_THROW(backward({1, 2, 3, 4}, 2, 3), Error);
  EXPECT_THROW(backward({1, 2, 3, 4}, 3, 2), Error);
  EXPECT_THROW(forward({65536, 1, 1, 1}, 1), Error);
  EXPECT_THROW(backward({65536, 1, 1, 1}, 1, 1), Error);
  EXPECT_THROW(forward({1, -1, 3, 4}, 3), Error);
#endif
}

}  // namespace
}  // namespace hymba::test
