// The CUDA attention against the CPU reference (computed in double): forward (out, lse) and
// backward (dq written, dk/dv accumulated) on random inputs, for the global and the sliding-window
// + meta-token masks at awkward sizes, v read as a column slice of a wider matrix. fp32 must agree
// to a relative 1e-5; bf16 follows the bf16 tolerance rule. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/attention.h"
#include "gpu_test.h"
#include "gpu_attention_reference.h"
#include "gradcheck.h"

#ifdef HYMBA_HAVE_CUDA
#include "core/error.h"
#include "cuda/attention.h"
#endif

namespace hymba::test {
namespace {

using cpu::AttentionShape;

#ifdef HYMBA_HAVE_CUDA

AttentionShape global_shape(int64_t B, int64_t S, int64_t nh, int64_t nkv, int64_t hd, int64_t vd) {
  return {B, S, nh, nkv, hd, vd, /*global=*/true, /*window=*/0, /*meta=*/0};
}
AttentionShape local_shape(int64_t B, int64_t S, int64_t nh, int64_t nkv, int64_t hd, int64_t vd,
                           int64_t window, int64_t meta) {
  return {B, S, nh, nkv, hd, vd, /*global=*/false, window, meta};
}

testing::Message describe(const AttentionShape& s, int64_t vpad) {
  return testing::Message() << "B " << s.B << " S " << s.S << " nh " << s.nh << " nkv " << s.nkv
                            << " hd " << s.hd << " vd " << s.vd << (s.global ? " global" : " local")
                            << " W " << s.window << " M " << s.meta << " vpad " << vpad;
}

struct Case {
  AttentionShape s;
  int64_t vpad;  // v's token stride is nkv·vd + vpad
};

// S = 1; S below the window; window below S with M = 0 and M > 0 (M below, at and above the
// window, and not a multiple of the 32-row tiles); window 0; global layers; nh/nkv = 1, 3, 5;
// hd != vd; the largest head dims (256); ldv > nkv·vd; and the real layer shape (S = 600).
std::vector<Case> cases() {
  return {
      {global_shape(2, 1, 3, 1, 16, 16), 0},
      {local_shape(2, 1, 3, 3, 16, 8, 4, 0), 3},
      {local_shape(2, 13, 3, 1, 16, 24, 20, 3), 5},
      {local_shape(1, 77, 5, 5, 32, 40, 10, 0), 1},
      {local_shape(2, 100, 6, 2, 37, 19, 17, 5), 7},
      {local_shape(1, 150, 10, 2, 48, 96, 31, 40), 2},
      {local_shape(1, 45, 3, 3, 5, 7, 0, 2), 4},
      {local_shape(1, 70, 5, 1, 64, 128, 33, 33), 0},
      {global_shape(2, 67, 5, 1, 64, 128), 3},
      {global_shape(1, 97, 6, 2, 33, 65), 1},
      {local_shape(1, 40, 2, 1, 256, 256, 9, 3), 2},
      {global_shape(1, 35, 1, 1, 256, 200), 0},
      {local_shape(1, 600, 5, 1, 64, 64, 256, 128), 64},
  };
}

// The doubles T represents after rounding v.
template <class T>
std::vector<double> rounded(const std::vector<double>& v) {
  return to_double(as<T>(v));
}

template <class T>
std::vector<T> nan_values(size_t n) {
  return as<T>(std::vector<double>(n, std::numeric_limits<double>::quiet_NaN()));
}



// Runs the GPU forward and backward of one case in T and compares every output.
template <class T>
void check_case(const Case& cs, uint64_t seed) {
  constexpr bool is_bf16 = std::is_same_v<T, bf16>;
  const AttentionShape& s = cs.s;
  const int64_t nq = s.B * s.S * s.nh * s.hd, nk = s.B * s.S * s.nkv * s.hd;
  const int64_t nv = s.B * s.S * s.nkv * s.vd, no = s.B * s.S * s.nh * s.vd, nl = s.B * s.nh * s.S;
  const int64_t pad = cs.vpad, ldv = s.nkv * s.vd + pad;

  // q spans [-2, 2] so that the softmax is far from uniform.
  std::vector<double> q = random_vector(nq, seed, 2.0), k = random_vector(nk, seed + 1);
  std::vector<double> v = random_vector(nv, seed + 2), dout = random_vector(no, seed + 3);
  if (!is_bf16) {
    // The fp32 check measures the kernel alone: the reference sees the float inputs exactly.
    q = rounded<float>(q), k = rounded<float>(k), v = rounded<float>(v), dout = rounded<float>(dout);
  }
  const Reference exact = reference(s, q, k, v, dout, /*round_out=*/false);
  // naive: the double reference on bf16-rounded inputs (bf16 only).
  const Reference naive = is_bf16 ? reference(s, rounded<bf16>(q), rounded<bf16>(k), rounded<bf16>(v),
                                              rounded<bf16>(dout), /*round_out=*/true)
                                  : Reference{};

  // dk/dv accumulate onto random values of the gradients' own magnitude (exact in T), so that
  // both a lost `+=` and a wrong gradient show. dk is exactly 0 when every query sees a single
  // key (S = 1, see below); its start values are then O(1) like the cancelling terms.
  auto magnitude = [](const std::vector<double>& g) { return max_abs(g) > 0 ? max_abs(g) : 1.0; };
  std::vector<double> dk0 = random_vector(nk, seed + 4, magnitude(exact.dk));
  std::vector<double> dv0 = random_vector(nv, seed + 5, magnitude(exact.dv));
  dk0 = rounded<T>(dk0), dv0 = rounded<T>(dv0);

  DeviceArray<T> gq(as<T>(q)), gk(as<T>(k)), gdout(as<T>(dout));
  DeviceArray<T> gv(as<T>(wide_v(v, s, pad)));  // [B·S, ldv], the slice at column pad
  const T* vslice = gv.data() + pad;
  DeviceArray<T> gout(nan_values<T>(no));
  DeviceFloats glse(std::vector<float>(nl, std::nanf("")));
  cuda::attention_forward<T>(gout.data(), glse.data(), gq.data(), gk.data(), vslice, ldv, s, nullptr);

  DeviceArray<T> gdq(nan_values<T>(nq)), gdk(as<T>(dk0)), gdv(as<T>(dv0));
  DeviceFloats work(std::vector<float>(cuda::attention_backward_workspace(s), std::nanf("")));
  cuda::attention_backward<T>(gdq.data(), gdk.data(), gdv.data(), gdout.data(), gq.data(), gk.data(),
                              vslice, ldv, gout.data(), glse.data(), s, work.data(), nullptr);

  const std::vector<T> out = gout.to_host(), dq = gdq.to_host(), dk = gdk.to_host(), dv = gdv.to_host();
  const std::vector<float> lse = glse.to_host();
  struct Output {
    const char* name;
    std::vector<double> gpu, exact, naive;
  };
  const std::vector<double> none;
  const Output outputs[] = {
      {"out", to_double(out), exact.out, naive.out},
      {"lse", to_double(lse), exact.lse, naive.lse},
      {"dq", to_double(dq), exact.dq, naive.dq},
      {"dk", to_double(dk), plus(dk0, exact.dk), is_bf16 ? plus(dk0, naive.dk) : none},
      {"dv", to_double(dv), plus(dv0, exact.dv), is_bf16 ? plus(dv0, naive.dv) : none},
  };
  for (const Output& o : outputs) {
    expect_finite(o.gpu, o.name);
    if (max_abs(o.exact) == 0) {
      // dq when every query sees a single key (S = 1): its terms P·(dout·v − D) cancel exactly,
      // so only an absolute bound means anything; the cancelling terms are O(1).
      EXPECT_LE(max_abs(o.gpu), 1e-5) << o.name;
    } else if constexpr (is_bf16) {
      expect_within_bf16_rule(o.gpu, o.exact, o.naive, o.name);
    } else {
      EXPECT_LT(max_relative_error(o.gpu, o.exact), 1e-5) << o.name;
    }
  }

  // Same inputs, same bits: every sum runs in a fixed order.
  DeviceArray<T> gout2(nan_values<T>(no));
  DeviceFloats glse2(std::vector<float>(nl, std::nanf("")));
  cuda::attention_forward<T>(gout2.data(), glse2.data(), gq.data(), gk.data(), vslice, ldv, s, nullptr);
  DeviceArray<T> gdq2(nan_values<T>(nq)), gdk2(as<T>(dk0)), gdv2(as<T>(dv0));
  cuda::attention_backward<T>(gdq2.data(), gdk2.data(), gdv2.data(), gdout.data(), gq.data(), gk.data(),
                              vslice, ldv, gout.data(), glse.data(), s, work.data(), nullptr);
  EXPECT_TRUE(same_bits(gout2.to_host(), out)) << "out differs between runs";
  EXPECT_TRUE(same_bits(glse2.to_host(), lse)) << "lse differs between runs";
  EXPECT_TRUE(same_bits(gdq2.to_host(), dq)) << "dq differs between runs";
  EXPECT_TRUE(same_bits(gdk2.to_host(), dk)) << "dk differs between runs";
  EXPECT_TRUE(same_bits(gdv2.to_host(), dv)) << "dv differs between runs";
}

template <class T>
void check_all_cases() {
  uint64_t seed = std::is_same_v<T, float> ? 100 : 200;
  for (const Case& cs : cases()) {
    SCOPED_TRACE(describe(cs.s, cs.vpad));
    check_case<T>(cs, seed += 10);
  }
}

#endif  // HYMBA_HAVE_CUDA

TEST(GpuAttention, Fp32MatchesTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_all_cases<float>();
#endif
}

TEST(GpuAttention, Bf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_all_cases<bf16>();
#endif
}

// Shape checks happen on the host before any launch, and empty shapes launch nothing, so this
// runs without a GPU too.
TEST(GpuAttention, RejectsUnsupportedShapesAndSkipsEmptyOnes) {
#ifdef HYMBA_HAVE_CUDA
  float* none = nullptr;
  auto forward = [&](const AttentionShape& s, int64_t ldv) {
    cuda::attention_forward<float>(none, none, none, none, none, ldv, s, nullptr);
  };
  auto backward = [&](const AttentionShape& s, int64_t ldv) {
    cuda::attention_backward<float>(none, none, none, none, none, none, none, ldv, none, none, s,
                                    none, nullptr);
  };
  EXPECT_THROW(forward(global_shape(1, 4, 5, 2, 8, 8), 16), Error);     // nh % nkv != 0
  EXPECT_THROW(forward(global_shape(1, 4, 2, 1, 257, 8), 8), Error);    // hd too large
  EXPECT_THROW(forward(global_shape(1, 4, 2, 1, 8, 300), 300), Error);  // vd too large
  EXPECT_THROW(backward(global_shape(1, 4, 2, 1, 8, 8), 7), Error);     // ldv < nkv·vd
  EXPECT_THROW(backward(local_shape(1, 4, 2, 1, 8, 8, -1, 0), 8), Error);
  EXPECT_NO_THROW(forward(global_shape(1, 0, 2, 1, 8, 8), 8));
  EXPECT_NO_THROW(backward(local_shape(0, 9, 2, 1, 8, 8, 3, 1), 8));
  EXPECT_EQ(cuda::attention_backward_workspace(global_shape(3, 7, 5, 1, 8, 8)), 3 * 5 * 7);
#endif
}

}  // namespace
}  // namespace hymba::test
