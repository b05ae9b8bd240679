// The CUDA SwiGLU against the CPU reference computed in double, forward and backward, float and
// bf16, at sizes that leave a tail after the 16-byte packs and with pointers that are not 16-byte
// aligned (the one-value path). Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/swiglu.h"
#include "gpu_test.h"
#include "gradcheck.h"

#ifdef HYMBA_HAVE_CUDA
#include "cuda/swiglu.h"
#endif

namespace hymba::test {
namespace {

#ifdef HYMBA_HAVE_CUDA

// `offset` leading values that the kernels never see, so that every pointer is shifted by
// offset · sizeof(T) bytes.
template <class T>
std::vector<T> shifted(const std::vector<T>& v, int64_t offset) {
  std::vector<T> r(offset, nan_of<T>());
  r.insert(r.end(), v.begin(), v.end());
  return r;
}
template <class T>
std::vector<T> unshifted(const std::vector<T>& v, int64_t offset) {
  return std::vector<T>(v.begin() + offset, v.end());
}

struct SwigluRef {
  std::vector<double> a, dg, dup;
};
SwigluRef swiglu_reference(const std::vector<double>& g, const std::vector<double>& up,
                           const std::vector<double>& da) {
  const int64_t n = int64_t(g.size());
  SwigluRef r{std::vector<double>(n), std::vector<double>(n), std::vector<double>(n)};
  cpu::swiglu_forward(r.a.data(), g.data(), up.data(), n);
  cpu::swiglu_backward(r.dg.data(), r.dup.data(), da.data(), g.data(), up.data(), n);
  return r;
}

template <class T>
void check_swiglu(int64_t n, int64_t offset) {
  SCOPED_TRACE(testing::Message() << (std::is_same_v<T, float> ? "float" : "bf16") << " n " << n
                                  << " offset " << offset);
  const uint64_t seed = uint64_t(n + offset);
  // g over [−8, 8): both tails of the sigmoid.
  const auto g = random_vector(n, seed, 8.0), up = random_vector(n, seed + 1),
             da = random_vector(n, seed + 2);
  const SwigluRef exact = swiglu_reference(g, up, da);

  DeviceArray<T> gg(shifted(as<T>(g), offset)), gup(shifted(as<T>(up), offset)),
      gda(shifted(as<T>(da), offset));
  const std::vector<T> poison(n + offset, nan_of<T>());
  DeviceArray<T> ga(poison), gdg(poison), gdup(poison);
  cuda::swiglu_forward<T>(ga.data() + offset, gg.data() + offset, gup.data() + offset, n, nullptr);
  cuda::swiglu_backward<T>(gdg.data() + offset, gdup.data() + offset, gda.data() + offset, gg.data() + offset,
                           gup.data() + offset, n, nullptr);
  const std::vector<T> a_bits = ga.to_host(), dg_bits = gdg.to_host(), dup_bits = gdup.to_host();
  for (int64_t i = 0; i < offset; ++i) {
    for (const auto* out : {&a_bits, &dg_bits, &dup_bits}) {
      EXPECT_TRUE(std::isnan(to_double(std::vector<T>{(*out)[i]})[0])) << "wrote before the start";
    }
  }
  const auto a = to_double(unshifted(a_bits, offset)), dg = to_double(unshifted(dg_bits, offset)),
             dup = to_double(unshifted(dup_bits, offset));

  if constexpr (std::is_same_v<T, float>) {
    EXPECT_LT(max_relative_error(a, exact.a), 1e-5) << "a";
    EXPECT_LT(max_relative_error(dg, exact.dg), 1e-5) << "dg";
    EXPECT_LT(max_relative_error(dup, exact.dup), 1e-5) << "dup";
  } else {
    const SwigluRef naive = swiglu_reference(bf16_round(g), bf16_round(up), bf16_round(da));
    expect_within_bf16_rule(a, exact.a, naive.a, "a");
    expect_within_bf16_rule(dg, exact.dg, naive.dg, "dg");
    expect_within_bf16_rule(dup, exact.dup, naive.dup, "dup");
  }

  // Same inputs, same bits.
  DeviceArray<T> ga2(poison), gdg2(poison), gdup2(poison);
  cuda::swiglu_forward<T>(ga2.data() + offset, gg.data() + offset, gup.data() + offset, n, nullptr);
  cuda::swiglu_backward<T>(gdg2.data() + offset, gdup2.data() + offset, gda.data() + offset,
                           gg.data() + offset, gup.data() + offset, n, nullptr);
  EXPECT_TRUE(same_bits(ga2.to_host(), a_bits)) << "forward is not deterministic";
  EXPECT_TRUE(same_bits(gdg2.to_host(), dg_bits)) << "dg is not deterministic";
  EXPECT_TRUE(same_bits(gdup2.to_host(), dup_bits)) << "dup is not deterministic";
}

struct SwigluCase {
  int64_t n, offset;
};
const SwigluCase kCases[] = {
    {1, 0},    {3, 0},      {7, 0},     {8, 0},     {9, 0},      {31, 0},
    {1000, 0}, {4099, 0},   {5, 1},     {1001, 1},  {4099, 3},   // misaligned: the one-value path
    {2176 * 3200, 0},                                            // one batch row of the model's MLP
};

#endif  // HYMBA_HAVE_CUDA

TEST(GpuSwiglu, FloatMatchesTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const SwigluCase& c : kCases) check_swiglu<float>(c.n, c.offset);
#endif
}

TEST(GpuSwiglu, Bf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const SwigluCase& c : kCases) check_swiglu<bf16>(c.n, c.offset);
#endif
}

TEST(GpuSwiglu, EmptyWritesNothing) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  DeviceFloats buf(std::vector<float>(4, 1.0f));
  cuda::swiglu_forward<float>(buf.data(), buf.data(), buf.data(), 0, nullptr);
  cuda::swiglu_backward<float>(buf.data(), buf.data(), buf.data(), buf.data(), buf.data(), 0, nullptr);
  EXPECT_EQ(buf.to_host(), std::vector<float>(4, 1.0f));
#endif
}

}  // namespace
}  // namespace hymba::test
