// The cuBLASLt GEMMs behind every Linear layer against the CPU reference (double): forward with
// = and +=, backward with dx = / += (scaled by a dx factor) and dw +=, strided rows, fp32 (relative 1e-5: no TF32) and bf16
// (the tolerance rule of DESIGN.md §4), with cuBLASLt's first algorithm and with timed ones; timed
// algorithms carried to another Gemm (as a checkpoint carries them) give the same bits. Skipped
// without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cpu/gemm.h"
#include "gpu_test.h"
#include "gradcheck.h"

#ifdef HYMBA_HAVE_CUDA
#include "cuda/gemm.h"
#endif

namespace hymba::test {
namespace {

#ifdef HYMBA_HAVE_CUDA
struct LinearSize {
  int64_t rows, in, out;
};

// Outputs of one forward (y += x·wᵀ onto y0) and backward (dx += dy·w onto dx0, dw += dyᵀ·x).
struct LinearResult {
  std::vector<double> y, dx, dw;
};

struct LinearInputs {
  std::vector<double> x, w, dy, y0, dx0, dw0;
};

constexpr int64_t kPad = 5;  // extra elements per row: every matrix but w and dw is strided
constexpr double kDxAlpha = -0.5;  // the input gradient's factor (the model's fusion uses 0.5)

LinearInputs make_inputs(const LinearSize& s) {
  const auto ldx = s.in + kPad, ldy = s.out + kPad;
  return {random_vector(s.rows * ldx, 1 + s.in), random_vector(s.out * s.in, 2 + s.out, 0.5),
          random_vector(s.rows * ldy, 3 + s.rows), random_vector(s.rows * ldy, 4),
          random_vector(s.rows * ldx, 5), random_vector(s.out * s.in, 6)};
}

LinearResult cpu_linear(const LinearInputs& in, const LinearSize& s) {
  const auto ldx = s.in + kPad, ldy = s.out + kPad;
  LinearResult r{in.y0, in.dx0, in.dw0};
  cpu::linear_forward(r.y.data(), ldy, in.x.data(), ldx, in.w.data(), s.rows, s.in, s.out, true);
  cpu::linear_backward(r.dx.data(), ldx, r.dw.data(), in.dy.data(), ldy, in.x.data(), ldx, in.w.data(),
                       s.rows, s.in, s.out, true, kDxAlpha);
  return r;
}

template <class T>
LinearResult gpu_linear(cuda::Gemm& gemm, const LinearInputs& in, const LinearSize& s) {
  const auto ldx = s.in + kPad, ldy = s.out + kPad;
  DeviceArray<T> x(as<T>(in.x)), w(as<T>(in.w)), dy(as<T>(in.dy));
  DeviceArray<T> y(as<T>(in.y0)), dx(as<T>(in.dx0));
  DeviceFloats dw(cast_vector<float>(in.dw0));
  cuda::linear_forward(gemm, y.data(), ldy, x.data(), ldx, w.data(), s.rows, s.in, s.out, true);
  cuda::linear_backward(gemm, dx.data(), ldx, dw.data(), dy.data(), ldy, x.data(), ldx, w.data(), s.rows, s.in,
                        s.out, true, float(kDxAlpha));
  return {to_double(y.to_host()), to_double(dx.to_host()), to_double(dw.to_host())};
}

// With a Gemm of its own, whose algorithms are cuBLASLt's first, or timed.
template <class T>
LinearResult gpu_linear(const LinearInputs& in, const LinearSize& s, bool timed = false) {
  cuda::Gemm gemm(nullptr);
  gemm.set_timing(timed);
  return gpu_linear<T>(gemm, in, s);
}

const LinearSize kSizes[] = {{1, 1, 1}, {7, 3, 5}, {33, 100, 17}, {300, 64, 257}, {517, 160, 96}};
#endif

TEST(GpuGemm, LinearForwardAndBackwardMatchTheCpuReferenceInFp32) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const LinearSize& s : kSizes) {
    for (const bool timed : {false, true}) {
      SCOPED_TRACE(testing::Message() << s.rows << " x " << s.in << " -> " << s.out << (timed ? ", timed" : ""));
      const LinearInputs in = make_inputs(s);
      const LinearResult ref = cpu_linear(in, s), got = gpu_linear<float>(in, s, timed);
      EXPECT_LT(max_relative_error(got.y, ref.y), 1e-5);
      EXPECT_LT(max_relative_error(got.dx, ref.dx), 1e-5);
      EXPECT_LT(max_relative_error(got.dw, ref.dw), 1e-5);
    }
  }
#endif
}

TEST(GpuGemm, LinearForwardAndBackwardFollowTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const LinearSize& s : kSizes) {
    for (const bool timed : {false, true}) {
      SCOPED_TRACE(testing::Message() << s.rows << " x " << s.in << " -> " << s.out << (timed ? ", timed" : ""));
      const LinearInputs in = make_inputs(s);
      // The naive bf16 version sees bf16 inputs (the fp32 weight-gradient start dw0 stays exact).
      const LinearInputs rounded{bf16_round(in.x), bf16_round(in.w), bf16_round(in.dy),
                                 bf16_round(in.y0), bf16_round(in.dx0), in.dw0};
      const LinearResult exact = cpu_linear(in, s), naive = cpu_linear(rounded, s);
      const LinearResult got = gpu_linear<bf16>(in, s, timed);
      expect_within_bf16_rule(got.y, exact.y, naive.y, "y");
      expect_within_bf16_rule(got.dx, exact.dx, naive.dx, "dx");
      expect_within_bf16_rule(got.dw, exact.dw, naive.dw, "dw");
    }
  }
#endif
}

TEST(GpuGemm, RepeatedCallsGiveTheSameBits) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  const LinearSize s{517, 160, 96};
  const LinearInputs in = make_inputs(s);
  const LinearResult a = gpu_linear<float>(in, s), b = gpu_linear<float>(in, s);
  EXPECT_EQ(a.y, b.y);
  EXPECT_EQ(a.dx, b.dx);
  EXPECT_EQ(a.dw, b.dw);
#endif
}

// A model-sized shape (many candidates): every GEMM of the linear layer is timed, and a second Gemm
// that adopts the first's algorithms computes the same bits. Algorithms said to come from another
// cuBLASLt are refused, and their shapes chosen again.
TEST(GpuGemm, TimedAlgorithmsAdoptedElsewhereGiveTheSameBits) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  const LinearSize s{2176, 640, 1600};
  const LinearInputs in = make_inputs(s);
  cuda::Gemm timed(nullptr);
  timed.set_timing(true);
  const LinearResult a = gpu_linear<bf16>(timed, in, s);
  EXPECT_EQ(timed.timing_counts().timed + timed.timing_counts().untimed, 3);  // forward, dx, dw
  const GemmChoices choices = timed.choices();
  ASSERT_EQ(choices.shapes.size(), 3u);
  EXPECT_EQ(choices.library_version, cuda::Gemm::library_version());

  cuda::Gemm adopted(nullptr);
  EXPECT_EQ(adopted.adopt(choices), 0);
  const LinearResult b = gpu_linear<bf16>(adopted, in, s);
  EXPECT_EQ(a.y, b.y);
  EXPECT_EQ(a.dx, b.dx);
  EXPECT_EQ(a.dw, b.dw);
  EXPECT_EQ(adopted.choices().shapes, choices.shapes);  // nothing chosen again

  GemmChoices other = choices;
  ++other.library_version;
  cuda::Gemm refusing(nullptr);
  EXPECT_EQ(refusing.adopt(other), 3);
  const LinearResult c = gpu_linear<bf16>(refusing, in, s);  // cuBLASLt's first algorithms
  EXPECT_EQ(c.y, gpu_linear<bf16>(in, s).y);
#endif
}

}  // namespace
}  // namespace hymba::test
