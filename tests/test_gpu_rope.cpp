// The CUDA RoPE against the CPU reference (computed in double), forward and backward, float and
// bf16, on random inputs of awkward sizes with strided x and dx, positions up to 4095. Skipped
// without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "cpu/rope.h"
#include "gpu_test.h"
#include "gradcheck.h"
#include "strided.h"

#ifdef HYMBA_HAVE_CUDA
#include "cuda/rope.h"
#endif

namespace hymba::test {
namespace {

#ifdef HYMBA_HAVE_CUDA

struct RopeSize {
  int64_t B, S, heads, hd;
};

// The CPU reference in double: y [B·S, width] from x at stride ldx, and dx at stride lddx from
// dy [B·S, width]; returns the compact y and the compact dx.
struct RopeRef {
  std::vector<double> y, dx;
};
RopeRef rope_reference(const std::vector<double>& x, int64_t ldx, const std::vector<double>& dy,
                       int64_t lddx, const std::vector<float>& inv_freq, const RopeSize& sz) {
  const int64_t tokens = sz.B * sz.S, width = sz.heads * sz.hd;
  RopeRef r;
  r.y.assign(tokens * width, 0.0);
  std::vector<double> dx_wide(tokens * lddx, 0.0);  // [B·S, lddx]
  cpu::rope_forward(r.y.data(), x.data(), ldx, inv_freq.data(), sz.B, sz.S, sz.heads, sz.hd);
  cpu::rope_backward(dx_wide.data(), lddx, dy.data(), inv_freq.data(), sz.B, sz.S, sz.heads, sz.hd);
  r.dx = extract(dx_wide, tokens, width, lddx, 0);
  return r;
}

template <class T>
void check_rope(const RopeSize& sz) {
  SCOPED_TRACE(testing::Message() << (std::is_same_v<T, float> ? "float" : "bf16") << " B " << sz.B
                                  << " S " << sz.S << " heads " << sz.heads << " hd " << sz.hd);
  const int64_t tokens = sz.B * sz.S, width = sz.heads * sz.hd;
  const int64_t ldx = width + 5, lddx = width + 3;  // x and dx are slices of wider rows
  const uint64_t seed = uint64_t(1000 * sz.S + 10 * sz.heads + sz.hd);
  const auto x = random_vector(tokens * ldx, seed);         // [B·S, ldx]
  const auto dy = random_vector(tokens * width, seed + 1);  // [B·S, width]
  // The model's NTK frequencies (inv_freq[0] = 1, so angles reach S − 1 radians); the NTK base
  // needs hd > 2.
  const std::vector<float> inv_freq = cpu::rope_inv_freq(sz.hd, 1e4, sz.hd > 2, 8192, 2048);

  const RopeRef exact = rope_reference(x, ldx, dy, lddx, inv_freq, sz);

  // The GPU. Written outputs start as NaN so a missed element shows; dx's gap columns must stay NaN.
  DeviceArray<T> gx(as<T>(x)), gdy(as<T>(dy));
  DeviceFloats gf(inv_freq);
  DeviceArray<T> gy(std::vector<T>(tokens * width, nan_of<T>()));
  DeviceArray<T> gdx(std::vector<T>(tokens * lddx, nan_of<T>()));
  cuda::rope_forward<T>(gy.data(), gx.data(), ldx, gf.data(), sz.B, sz.S, sz.heads, sz.hd, nullptr);
  cuda::rope_backward<T>(gdx.data(), lddx, gdy.data(), gf.data(), sz.B, sz.S, sz.heads, sz.hd, nullptr);
  const std::vector<T> y_bits = gy.to_host(), dx_bits = gdx.to_host();
  const std::vector<double> y = to_double(y_bits), dx_wide = to_double(dx_bits);
  const std::vector<double> dx = extract(dx_wide, tokens, width, lddx, 0);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t c = width; c < lddx; ++c) {
      ASSERT_TRUE(std::isnan(dx_wide[t * lddx + c])) << "dx gap written: token " << t << ", column " << c;
    }
  }

  if constexpr (std::is_same_v<T, float>) {
    EXPECT_LT(max_relative_error(y, exact.y), 1e-5) << "y";
    EXPECT_LT(max_relative_error(dx, exact.dx), 1e-5) << "dx";
  } else {
    const RopeRef naive = rope_reference(bf16_round(x), ldx, bf16_round(dy), lddx, inv_freq, sz);
    expect_within_bf16_rule(y, exact.y, naive.y, "y");
    expect_within_bf16_rule(dx, exact.dx, naive.dx, "dx");
  }

  // Same inputs, same bits.
  DeviceArray<T> gy2(std::vector<T>(tokens * width, nan_of<T>()));
  DeviceArray<T> gdx2(std::vector<T>(tokens * lddx, nan_of<T>()));
  cuda::rope_forward<T>(gy2.data(), gx.data(), ldx, gf.data(), sz.B, sz.S, sz.heads, sz.hd, nullptr);
  cuda::rope_backward<T>(gdx2.data(), lddx, gdy.data(), gf.data(), sz.B, sz.S, sz.heads, sz.hd, nullptr);
  EXPECT_TRUE(same_bits(gy2.to_host(), y_bits)) << "forward is not deterministic";
  EXPECT_TRUE(same_bits(gdx2.to_host(), dx_bits)) << "backward is not deterministic";

  // In place (y = x with contiguous rows), as the header allows: the same bits as out of place.
  const std::vector<double> x_compact = extract(x, tokens, width, ldx, 0);
  DeviceArray<T> gxy(as<T>(x_compact));
  DeviceArray<T> gy3(std::vector<T>(tokens * width, nan_of<T>()));
  cuda::rope_forward<T>(gy3.data(), gxy.data(), width, gf.data(), sz.B, sz.S, sz.heads, sz.hd, nullptr);
  cuda::rope_forward<T>(gxy.data(), gxy.data(), width, gf.data(), sz.B, sz.S, sz.heads, sz.hd, nullptr);
  EXPECT_TRUE(same_bits(gxy.to_host(), gy3.to_host())) << "in-place forward differs";
  EXPECT_TRUE(same_bits(gy3.to_host(), y_bits)) << "contiguous x differs from strided x";
}

const RopeSize kSizes[] = {
    {1, 1, 1, 2},      {2, 3, 3, 8},      {1, 5, 25, 64},   {2, 37, 3, 2},
    {1, 300, 25, 8},   {2, 97, 1, 64},    {1, 4096, 1, 64},  // positions up to 4095
    {2, 2200, 25, 64},                                         // the model's q (S = 2176 there)
};

#endif  // HYMBA_HAVE_CUDA

TEST(GpuRope, FloatMatchesTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const RopeSize& sz : kSizes) check_rope<float>(sz);
#endif
}

TEST(GpuRope, Bf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const RopeSize& sz : kSizes) check_rope<bf16>(sz);
#endif
}

TEST(GpuRope, EmptyAndInvalidSizes) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  DeviceFloats f(std::vector<float>{1.0f});
  DeviceFloats buf(std::vector<float>(8, 1.0f));
  // Nothing to do: no launch, no error, nothing written.
  cuda::rope_forward<float>(buf.data(), buf.data(), 2, f.data(), 0, 4, 1, 2, nullptr);
  cuda::rope_forward<float>(buf.data(), buf.data(), 2, f.data(), 1, 0, 1, 2, nullptr);
  cuda::rope_backward<float>(buf.data(), 2, buf.data(), f.data(), 1, 4, 0, 2, nullptr);
  EXPECT_EQ(buf.to_host(), std::vector<float>(8, 1.0f));
  // An odd head_dim and a stride below the row width are refused.
  EXPECT_THROW(cuda::rope_forward<float>(buf.data(), buf.data(), 3, f.data(), 1, 1, 1, 3, nullptr), Error);
  EXPECT_THROW(cuda::rope_backward<float>(buf.data(), 2, buf.data(), f.data(), 1, 1, 2, 2, nullptr), Error);
#endif
}

}  // namespace
}  // namespace hymba::test
