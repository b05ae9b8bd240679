// The CUDA selective scan against the CPU reference (computed in double), forward and every
// backward output, float and bf16, on random inputs: sequence lengths around the 64-token chunks
// (1, 7, 64, 65, 130, 300, 500), channel counts that are not multiples of the 32-channel warps,
// N = 0, 1, 4, 16, 20, 32 (every register-array size the kernels are built for), B = 1..3, with
// z and dz as column slices of wider rows. Skipped without a GPU.
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

// One scan problem, values as in tests/test_selective_scan.cpp: Δ = softplus(delta + dt_bias) in
// about [0.03, 1.7] and A = −(1..N) up to noise, so exp(ΔA) runs from near 1 (long memory) to
// near 0.
struct Problem {
  ScanShape s;
  std::vector<double> u, delta, z, dout;  // [B, S, E] (z compact here)
  std::vector<double> Bm, Cm;             // [B, S, N]
  std::vector<double> dt_bias, D;         // [E]
  std::vector<double> A_log;              // [E, N]

  int64_t bse() const { return s.B * s.S * s.E; }
  int64_t bsn() const { return s.B * s.S * s.N; }
  int64_t rows() const { return s.B * s.S; }
};

Problem make_problem(const ScanShape& s, uint64_t seed) {
  Problem p;
  p.s = s;
  const int64_t bse = s.B * s.S * s.E, bsn = s.B * s.S * s.N;
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
  for (auto* v : {&p.u, &p.delta, &p.z, &p.dout, &p.Bm, &p.Cm, &p.dt_bias, &p.D, &p.A_log})
    *v = fp32_values(*v);
  return p;
}

// The activations rounded to bf16 (the parameters stay fp32 in the bf16 kernel too).
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
  r.params = start;
  cpu::selective_scan_forward<double>(r.out.data(), p.u.data(), p.delta.data(), p.dt_bias.data(),
                                      p.A_log.data(), p.Bm.data(), p.Cm.data(), p.D.data(),
                                      p.z.data(), s.E, s);
  cpu::selective_scan_backward<double>(
      r.du.data(), r.ddelta.data(), r.dz.data(), s.E, r.dBm.data(), r.dCm.data(),
      r.params.ddt_bias.data(), r.params.dA_log.data(), r.params.dD.data(), p.dout.data(),
      p.u.data(), p.delta.data(), p.dt_bias.data(), p.A_log.data(), p.Bm.data(), p.Cm.data(),
      p.D.data(), p.z.data(), s.E, s);
  return r;
}

// z and dz are columns [col, col + E) of wider rows.
constexpr int64_t kZCol = 1, kDzCol = 2;
int64_t ldz_of(const ScanShape& s) { return s.E + 3; }
int64_t lddz_of(const ScanShape& s) { return s.E + 5; }

// The inputs on the device.
template <class T>
struct DeviceInputs {
  DeviceArray<T> u, delta, z_wide, dout, Bm, Cm;  // z_wide [B, S, ldz]
  DeviceFloats dt_bias, A_log, D;
  explicit DeviceInputs(const Problem& p)
      : u(as<T>(p.u)), delta(as<T>(p.delta)),
        z_wide(as<T>(embed(p.z, p.rows(), p.s.E, ldz_of(p.s), kZCol))), dout(as<T>(p.dout)),
        Bm(as<T>(p.Bm)), Cm(as<T>(p.Cm)), dt_bias(cast_vector<float>(p.dt_bias)),
        A_log(cast_vector<float>(p.A_log)), D(cast_vector<float>(p.D)) {}
  const T* z() const { return z_wide.data() + kZCol; }
};

// One forward and one backward on the GPU, outputs as the kernels left them (bits). Written
// outputs start as NaN so a missed element shows, as does the workspace so a slot read before it
// is written shows; dz's gap columns start as kGap and must keep it.
template <class T>
struct GpuRun {
  std::vector<T> out, du, ddelta, dz_wide, dBm, dCm;  // dz_wide [B, S, lddz]
  std::vector<float> ddt_bias, dA_log, dD;
};

template <class T>
GpuRun<T> run_gpu(const Problem& p, const DeviceInputs<T>& in, const ParamGrads& start) {
  const ScanShape& s = p.s;
  const int64_t lddz = lddz_of(s);
  const std::vector<double> nan_bse(p.bse(), std::nan(""));
  DeviceArray<T> out(std::vector<T>(p.bse(), nan_of<T>()));
  DeviceArray<T> du(std::vector<T>(p.bse(), nan_of<T>()));
  DeviceArray<T> ddelta(std::vector<T>(p.bse(), nan_of<T>()));
  DeviceArray<T> dz_wide(as<T>(embed(nan_bse, p.rows(), s.E, lddz, kDzCol)));
  DeviceArray<T> dBm(std::vector<T>(p.bsn(), nan_of<T>()));
  DeviceArray<T> dCm(std::vector<T>(p.bsn(), nan_of<T>()));
  DeviceFloats ddt_bias(cast_vector<float>(start.ddt_bias));
  DeviceFloats dA_log(cast_vector<float>(start.dA_log)), dD(cast_vector<float>(start.dD));
  DeviceFloats work(std::vector<float>(cuda::selective_scan_backward_workspace(s), std::nanf("")));

  cuda::selective_scan_forward<T>(out.data(), in.u.data(), in.delta.data(), in.dt_bias.data(),
                                  in.A_log.data(), in.Bm.data(), in.Cm.data(), in.D.data(), in.z(),
                                  ldz_of(s), s, nullptr);
  cuda::selective_scan_backward<T>(du.data(), ddelta.data(), dz_wide.data() + kDzCol, lddz, dBm.data(),
                                   dCm.data(), ddt_bias.data(), dA_log.data(), dD.data(),
                                   in.dout.data(), in.u.data(), in.delta.data(), in.dt_bias.data(),
                                   in.A_log.data(), in.Bm.data(), in.Cm.data(), in.D.data(), in.z(),
                                   ldz_of(s), s, work.data(), nullptr);
  return {out.to_host(),    du.to_host(),       ddelta.to_host(), dz_wide.to_host(),
          dBm.to_host(),    dCm.to_host(),      ddt_bias.to_host(), dA_log.to_host(),
          dD.to_host()};
}

template <class T>
void check_scan(const ScanShape& s) {
  SCOPED_TRACE(testing::Message() << (std::is_same_v<T, float> ? "float" : "bf16") << " B=" << s.B
                                  << " S=" << s.S << " E=" << s.E << " N=" << s.N);
  const Problem p = make_problem(s, uint64_t(1000 * s.S + 10 * s.E + s.N));
  const ParamGrads start = start_values(s);
  const Outputs exact = reference(p, start);

  const DeviceInputs<T> in(p);
  const GpuRun<T> run = run_gpu<T>(p, in, start);

  // dz: the gap columns keep their value, the slice holds the gradient.
  const std::vector<double> dz_wide = to_double(run.dz_wide);
  const double gap = to_double(as<T>({kGap}))[0];
  const int64_t lddz = lddz_of(s);
  for (int64_t r = 0; r < p.rows(); ++r) {
    for (int64_t c = 0; c < lddz; ++c) {
      if (c < kDzCol || c >= kDzCol + s.E) {
        ASSERT_EQ(dz_wide[r * lddz + c], gap) << "dz gap written: row " << r << ", column " << c;
      }
    }
  }
  const std::vector<double> dz = extract(dz_wide, p.rows(), s.E, lddz, kDzCol);

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
      {"du", to_double(run.du), &exact.du, &naive.du},
      {"ddelta", to_double(run.ddelta), &exact.ddelta, &naive.ddelta},
      {"dz", dz, &exact.dz, &naive.dz},
      {"dBm", to_double(run.dBm), &exact.dBm, &naive.dBm},
      {"dCm", to_double(run.dCm), &exact.dCm, &naive.dCm},
      {"ddt_bias", to_double(run.ddt_bias), &exact.params.ddt_bias, &naive.params.ddt_bias},
      {"dA_log", to_double(run.dA_log), &exact.params.dA_log, &naive.params.dA_log},
      {"dD", to_double(run.dD), &exact.params.dD, &naive.params.dD},
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

  // Same inputs, same bits: every cross-thread sum has a fixed order.
  const GpuRun<T> again = run_gpu<T>(p, in, start);
  EXPECT_TRUE(same_bits(again.out, run.out)) << "out";
  EXPECT_TRUE(same_bits(again.du, run.du)) << "du";
  EXPECT_TRUE(same_bits(again.ddelta, run.ddelta)) << "ddelta";
  EXPECT_TRUE(same_bits(again.dz_wide, run.dz_wide)) << "dz";
  EXPECT_TRUE(same_bits(again.dBm, run.dBm)) << "dBm";
  EXPECT_TRUE(same_bits(again.dCm, run.dCm)) << "dCm";
  EXPECT_TRUE(same_bits(again.ddt_bias, run.ddt_bias)) << "ddt_bias";
  EXPECT_TRUE(same_bits(again.dA_log, run.dA_log)) << "dA_log";
  EXPECT_TRUE(same_bits(again.dD, run.dD)) << "dD";
}

// {B, S, E, N}. S around the 64-token chunks; E around the 32-channel warps; N covers every
// register-array size (4, 16, 32) and the three ways the warp sums of dBm / dCm are laid out.
const ScanShape kFloatShapes[] = {
    {1, 1, 5, 1},     {2, 7, 37, 4},    {3, 64, 33, 16},  {1, 65, 70, 16},
    {2, 130, 45, 1},  {3, 300, 100, 4}, {1, 300, 65, 16}, {2, 65, 33, 20},
    {1, 130, 40, 32}, {2, 129, 1, 3},   {1, 64, 32, 16},  {2, 7, 5, 0},
    {2, 500, 200, 16},  // near the model's shape (E = 3200, S = 2176, N = 16)
};
const ScanShape kBf16Shapes[] = {
    {1, 7, 37, 4}, {2, 130, 45, 16}, {1, 65, 33, 20}, {3, 300, 100, 4}, {2, 500, 200, 16},
};

// The scan issue's lengths: one row of meta + text tokens (2176), about half (1000) and twice
// (4224), on a few channels so the double reference stays quick.
const ScanShape kLongShapes[] = {{1, 1000, 40, 16}, {2, 2176, 19, 16}, {1, 4224, 33, 16}};

#endif  // HYMBA_HAVE_CUDA

TEST(GpuSelectiveScan, LongSequencesMatchTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const ScanShape& s : kLongShapes) {
    check_scan<float>(s);
    check_scan<bf16>(s);
  }
#endif
}

TEST(GpuSelectiveScan, FloatMatchesTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const ScanShape& s : kFloatShapes) check_scan<float>(s);
#endif
}

TEST(GpuSelectiveScan, Bf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const ScanShape& s : kBf16Shapes) check_scan<bf16>(s);
#endif
}

TEST(GpuSelectiveScan, EmptyAndInvalidSizes) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  const std::vector<float> ones(64, 1.0f);
  DeviceFloats a(ones), b(ones), c(ones), d(ones), w(ones);
  float* f = a.data();
  const auto forward = [&](const ScanShape& s, int64_t ldz) {
    cuda::selective_scan_forward<float>(b.data(), f, f, f, f, f, f, f, f, ldz, s, nullptr);
  };
  const auto backward = [&](const ScanShape& s, int64_t ldz, int64_t lddz) {
    cuda::selective_scan_backward<float>(b.data(), b.data(), b.data(), lddz, c.data(), d.data(), b.data(),
                                         b.data(), b.data(), f, f, f, f, f, f, f, f, f, ldz, s,
                                         w.data(), nullptr);
  };
  // No tokens or no batch rows: nothing written, nothing added.
  for (const ScanShape& s : {ScanShape{0, 4, 3, 2}, ScanShape{2, 0, 3, 2}}) {
    forward(s, 3);
    backward(s, 3, 3);
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
  // N above 32 and a z stride below E are refused.
  EXPECT_THROW(forward({1, 2, 3, 33}, 3), Error);
  EXPECT_THROW(backward({1, 2, 3, 33}, 3, 3), Error);
  EXPECT_THROW((void)cuda::selective_scan_backward_workspace({1, 2, 3, 33}), Error);
  EXPECT_THROW(forward({1, 2, 3, 4}, 2), Error);
  EXPECT_THROW(backward({1, 2, 3, 4}, 3, 2), Error);
#endif
}

}  // namespace
}  // namespace hymba::test
