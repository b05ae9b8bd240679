// The CUDA causal depthwise conv + SiLU against the CPU reference (computed in double), forward
// and backward, float and bf16, on random inputs with channel counts that are not multiples of 32,
// sequences shorter than the kernel and longer than a block of tokens, K = 1..8, and strided x
// and dx (odd strides: the one-channel path; multiples of 4: the 4-channel forward and 2-channel
// backward). Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "cpu/conv_silu.h"
#include "gpu_test.h"
#include "gradcheck.h"
#include "strided.h"

#ifdef HYMBA_HAVE_CUDA
#include "cuda/conv_silu.h"
#endif

namespace hymba::test {
namespace {

#ifdef HYMBA_HAVE_CUDA

struct ConvSize {
  int64_t B, S, E, K;
  bool wide = false;  // strides that are multiples of 4 (with E one too: the wide paths)
};

// Inputs of one case. x and dx are slices of wider rows: x [B·S, ldx] (its gap columns hold
// random values the kernel must not use), dx [B·S, lddx]; odd strides keep the kernels on their
// one-channel path, multiples of 4 (with E one) put them on the wide ones (4 channels a thread
// forward, 2 backward).
struct ConvCase {
  ConvSize sz;
  int64_t ldx, lddx;
  std::vector<double> x, w, bias, du, dw_start, dbias_start;  // [B·S, ldx], [E, K], [E], [B·S, E], [E, K], [E]

  explicit ConvCase(const ConvSize& s) : sz(s), ldx(s.E + (s.wide ? 4 : 3)), lddx(s.E + (s.wide ? 8 : 5)) {
    const uint64_t seed = uint64_t(100000 * s.E + 100 * s.S + 10 * s.K + s.B);
    const int64_t tokens = s.B * s.S;
    x = random_vector(tokens * ldx, seed);
    w = random_vector(s.E * s.K, seed + 1, 0.7);
    bias = random_vector(s.E, seed + 2, 0.5);
    du = random_vector(tokens * s.E, seed + 3);
    dw_start = random_vector(s.E * s.K, seed + 4);  // dw and dbias accumulate onto these
    dbias_start = random_vector(s.E, seed + 5);
  }
};

struct ConvOut {
  std::vector<double> u, dx, dw, dbias;  // [B·S, E] x2 (dx compact), [E, K], [E]
};

// The CPU reference in double on the given x and du.
ConvOut conv_reference(const ConvCase& c, const std::vector<double>& x, const std::vector<double>& du) {
  const ConvSize& s = c.sz;
  const int64_t tokens = s.B * s.S;
  ConvOut r;
  r.u.assign(tokens * s.E, 0.0);
  cpu::conv_silu_forward(r.u.data(), x.data(), c.ldx, c.w.data(), c.bias.data(), s.B, s.S, s.E, s.K);
  std::vector<double> dx_wide(tokens * c.lddx, 0.0);  // [B·S, lddx]
  r.dw = c.dw_start;
  r.dbias = c.dbias_start;
  cpu::conv_silu_backward(dx_wide.data(), c.lddx, r.dw.data(), r.dbias.data(), du.data(), x.data(),
                          c.ldx, c.w.data(), c.bias.data(), s.B, s.S, s.E, s.K);
  r.dx = extract(dx_wide, tokens, s.E, c.lddx, 0);
  return r;
}

// The kernels on the device. Written outputs start as NaN, accumulated ones at the start values.
template <class T>
struct GpuConv {
  const ConvCase& c;
  DeviceArray<T> x, du;
  DeviceFloats w, bias;
  DeviceArray<T> u, dx;
  DeviceFloats dw, dbias, work;

  explicit GpuConv(const ConvCase& cc)
      : c(cc), x(as<T>(cc.x)), du(as<T>(cc.du)), w(cast_vector<float>(cc.w)),
        bias(cast_vector<float>(cc.bias)),
        u(std::vector<T>(cc.sz.B * cc.sz.S * cc.sz.E, nan_of<T>())),
        dx(std::vector<T>(cc.sz.B * cc.sz.S * cc.lddx, nan_of<T>())),
        dw(cast_vector<float>(cc.dw_start)), dbias(cast_vector<float>(cc.dbias_start)),
        work(std::vector<float>(
            cuda::conv_silu_backward_workspace(cc.sz.B, cc.sz.S, cc.sz.E, cc.sz.K), std::nanf(""))) {}

  // The forward, then the backward.
  void run() {
    const ConvSize& s = c.sz;
    cuda::conv_silu_forward<T>(u.data(), x.data(), c.ldx, w.data(), bias.data(), s.B, s.S, s.E, s.K,
                               nullptr);
    cuda::conv_silu_backward<T>(dx.data(), c.lddx, dw.data(), dbias.data(), du.data(), x.data(), c.ldx,
                                w.data(), bias.data(), s.B, s.S, s.E, s.K, work.data(), nullptr);
  }
};

template <class T>
void check_conv(const ConvSize& sz) {
  SCOPED_TRACE(testing::Message() << (std::is_same_v<T, float> ? "float" : "bf16") << " B " << sz.B
                                  << " S " << sz.S << " E " << sz.E << " K " << sz.K);
  const ConvCase c(sz);
  const int64_t tokens = sz.B * sz.S;
  const ConvOut exact = conv_reference(c, c.x, c.du);

  GpuConv<T> g(c);
  g.run();
  const std::vector<T> u_bits = g.u.to_host(), dx_bits = g.dx.to_host();
  const std::vector<float> dw_bits = g.dw.to_host(), dbias_bits = g.dbias.to_host();
  const std::vector<double> dx_wide = to_double(dx_bits);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t col = sz.E; col < c.lddx; ++col) {
      ASSERT_TRUE(std::isnan(dx_wide[t * c.lddx + col])) << "dx gap written: token " << t << ", column " << col;
    }
  }
  ConvOut gpu;
  gpu.u = to_double(u_bits);
  gpu.dx = extract(dx_wide, tokens, sz.E, c.lddx, 0);
  gpu.dw = to_double(dw_bits);
  gpu.dbias = to_double(dbias_bits);

  if constexpr (std::is_same_v<T, float>) {
    EXPECT_LT(max_relative_error(gpu.u, exact.u), 1e-5) << "u";
    EXPECT_LT(max_relative_error(gpu.dx, exact.dx), 1e-5) << "dx";
    EXPECT_LT(max_relative_error(gpu.dw, exact.dw), 1e-5) << "dw";
    EXPECT_LT(max_relative_error(gpu.dbias, exact.dbias), 1e-5) << "dbias";
  } else {
    const ConvOut naive = conv_reference(c, bf16_round(c.x), bf16_round(c.du));
    expect_within_bf16_rule(gpu.u, exact.u, naive.u, "u");
    expect_within_bf16_rule(gpu.dx, exact.dx, naive.dx, "dx");
    expect_within_bf16_rule(gpu.dw, exact.dw, naive.dw, "dw");
    expect_within_bf16_rule(gpu.dbias, exact.dbias, naive.dbias, "dbias");
  }

  // Same inputs, same bits: the dw and dbias partial sums are added in a fixed order.
  GpuConv<T> g2(c);
  g2.run();
  EXPECT_TRUE(same_bits(g2.u.to_host(), u_bits)) << "u is not deterministic";
  EXPECT_TRUE(same_bits(g2.dx.to_host(), dx_bits)) << "dx is not deterministic";
  EXPECT_TRUE(same_bits(g2.dw.to_host(), dw_bits)) << "dw is not deterministic";
  EXPECT_TRUE(same_bits(g2.dbias.to_host(), dbias_bits)) << "dbias is not deterministic";
}

// Channels not multiples of 32 (one partial block of 128, two blocks), sequences shorter than the
// kernel, and S = 300 spanning many 16-token blocks; then the largest K, sequences ending just
// past a block boundary (17, 65) and at one (64), and the model's E. Not E = 1: its single dbias can be its random start
// nearly cancelled by the sum, and the relative error of one float then measures only that
// cancellation (1.5e-5 seen with an exact-order emulation of the kernel).
std::vector<ConvSize> conv_sizes() {
  std::vector<ConvSize> sizes;
  for (const int64_t E : {3, 37, 131}) {
    for (const int64_t S : {1, 2, 3, 5, 300}) {
      for (const int64_t K : {1, 2, 3, 4}) sizes.push_back({1 + K % 2, S, E, K});
    }
  }
  sizes.push_back({2, 130, 33, 8});
  sizes.push_back({1, 65, 5, 7});
  sizes.push_back({2, 17, 40, 4});
  sizes.push_back({3, 64, 129, 5});
  sizes.push_back({2, 300, 3200, 4});
  // The wide paths: a partial channel block (132 of 512 or 256), several blocks, every K, short
  // and block-crossing sequences, the model's E.
  for (const int64_t K : {1, 3, 4, 8}) sizes.push_back({1 + K % 2, 65, 132, K, true});
  sizes.push_back({2, 3, 8, 4, true});
  sizes.push_back({1, 17, 1100, 5, true});
  sizes.push_back({2, 300, 3200, 4, true});
  return sizes;
}

#endif  // HYMBA_HAVE_CUDA

TEST(GpuConvSilu, FloatMatchesTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const ConvSize& sz : conv_sizes()) check_conv<float>(sz);
#endif
}

TEST(GpuConvSilu, Bf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const ConvSize& sz : conv_sizes()) check_conv<bf16>(sz);
#endif
}

TEST(GpuConvSilu, EmptyAndInvalidSizes) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  DeviceFloats buf(std::vector<float>(16, 1.0f)), w(std::vector<float>(16, 1.0f));
  DeviceFloats dw(std::vector<float>(16, 2.0f)), dbias(std::vector<float>(4, 3.0f));
  // Nothing to do: no launch, no error, nothing written, nothing added.
  EXPECT_EQ(cuda::conv_silu_backward_workspace(0, 5, 4, 4), 0);
  EXPECT_EQ(cuda::conv_silu_backward_workspace(2, 0, 4, 4), 0);
  cuda::conv_silu_forward<float>(buf.data(), buf.data(), 4, w.data(), w.data(), 0, 3, 4, 4, nullptr);
  cuda::conv_silu_forward<float>(buf.data(), buf.data(), 4, w.data(), w.data(), 1, 0, 4, 4, nullptr);
  cuda::conv_silu_backward<float>(buf.data(), 4, dw.data(), dbias.data(), buf.data(), buf.data(), 4, w.data(),
                                  w.data(), 1, 0, 4, 4, nullptr, nullptr);
  cuda::conv_silu_backward<float>(buf.data(), 4, dw.data(), dbias.data(), buf.data(), buf.data(), 4, w.data(),
                                  w.data(), 1, 3, 0, 4, nullptr, nullptr);
  EXPECT_EQ(buf.to_host(), std::vector<float>(16, 1.0f));
  EXPECT_EQ(dw.to_host(), std::vector<float>(16, 2.0f));
  EXPECT_EQ(dbias.to_host(), std::vector<float>(4, 3.0f));
  // K outside 1..8 and strides below E are refused.
  EXPECT_THROW(cuda::conv_silu_forward<float>(buf.data(), buf.data(), 4, w.data(), w.data(), 1, 1, 1, 9,
                                              nullptr),
               Error);
  EXPECT_THROW(cuda::conv_silu_forward<float>(buf.data(), buf.data(), 4, w.data(), w.data(), 1, 1, 1, 0,
                                              nullptr),
               Error);
  EXPECT_THROW(cuda::conv_silu_forward<float>(buf.data(), buf.data(), 3, w.data(), w.data(), 1, 1, 4, 4,
                                              nullptr),
               Error);
  EXPECT_THROW(cuda::conv_silu_backward<float>(buf.data(), 3, dw.data(), dbias.data(), buf.data(), buf.data(), 4,
                                               w.data(), w.data(), 1, 1, 4, 4, nullptr, nullptr),
               Error);
#endif
}

}  // namespace
}  // namespace hymba::test
