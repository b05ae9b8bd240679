// The CUDA fused softmax + cross-entropy against the CPU reference computed in double: the loss
// and dlogits, float and bf16 logits, written to a separate buffer, in place over the logits (as
// the model does) and not at all (dlogits null), with rows whose target is ignored. Skipped without
// a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/rng.h"
#include "cpu/cross_entropy.h"
#include "gpu_test.h"
#include "gradcheck.h"

#ifdef HYMBA_HAVE_CUDA
#include "cuda/cross_entropy.h"
#endif

namespace hymba::test {
namespace {

#ifdef HYMBA_HAVE_CUDA

struct CeSize {
  int64_t rows, V;
  double ignored;  // fraction of rows whose target is kIgnoreIndex
};

template <class T>
void check_cross_entropy(const CeSize& sz) {
  SCOPED_TRACE(testing::Message() << (std::is_same_v<T, float> ? "float" : "bf16") << " rows "
                                  << sz.rows << " V " << sz.V << " ignored " << sz.ignored);
  const int64_t rows = sz.rows, V = sz.V;
  const uint64_t seed = uint64_t(rows * 7 + V);
  const auto logits = random_vector(rows * V, seed, 4.0);  // [rows, V]
  std::vector<int32_t> targets(rows);                      // [rows]
  int64_t counted = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const bool ignore = uniform01(seed, 1, r) < sz.ignored;
    targets[r] = ignore ? cpu::kIgnoreIndex : int32_t(uniform01(seed, 2, r) * double(V)) % int32_t(V);
    counted += ignore ? 0 : 1;
  }
  const double grad_scale = 1.0 / double(std::max<int64_t>(counted, 1));

  std::vector<double> dlogits(rows * V);  // [rows, V]
  const double loss = cpu::cross_entropy(dlogits.data(), logits.data(), targets.data(), rows, V, grad_scale);

  // The GPU, three ways: a separate dlogits (NaN where it must write), in place, and none.
  DeviceArray<int32_t> gtargets(targets);
  DeviceArray<T> glogits(as<T>(logits));
  DeviceArray<T> gdlogits(std::vector<T>(rows * V, nan_of<T>()));
  DeviceFloats work(std::vector<float>(cuda::cross_entropy_workspace(rows), std::nanf("")));
  const double gpu_loss = cuda::cross_entropy<T>(gdlogits.data(), glogits.data(), gtargets.data(), rows, V,
                                                 grad_scale, work.data(), nullptr);
  const std::vector<T> dz_bits = gdlogits.to_host();
  const std::vector<double> dz = to_double(dz_bits);

  if constexpr (std::is_same_v<T, float>) {
    EXPECT_LT(max_relative_error({gpu_loss}, {loss}), 1e-5) << "loss " << gpu_loss << " vs " << loss;
    EXPECT_LT(max_relative_error(dz, dlogits), 1e-5) << "dlogits";
  } else {
    const auto rounded = bf16_round(logits);
    std::vector<double> naive_dz(rows * V);
    const double naive_loss =
        cpu::cross_entropy(naive_dz.data(), rounded.data(), targets.data(), rows, V, grad_scale);
    expect_within_bf16_rule({gpu_loss}, {loss}, {naive_loss}, "loss");
    expect_within_bf16_rule(dz, dlogits, naive_dz, "dlogits");
  }

  // Same inputs, same bits.
  DeviceArray<T> gdlogits2(std::vector<T>(rows * V, nan_of<T>()));
  const double gpu_loss2 = cuda::cross_entropy<T>(gdlogits2.data(), glogits.data(), gtargets.data(), rows,
                                                  V, grad_scale, work.data(), nullptr);
  EXPECT_EQ(gpu_loss2, gpu_loss) << "loss is not deterministic";
  EXPECT_TRUE(same_bits(gdlogits2.to_host(), dz_bits)) << "dlogits is not deterministic";

  // In place over the logits, as the model calls it: the same loss and gradient bits.
  DeviceArray<T> ginplace(as<T>(logits));
  const double inplace_loss = cuda::cross_entropy<T>(ginplace.data(), ginplace.data(), gtargets.data(), rows,
                                                     V, grad_scale, work.data(), nullptr);
  EXPECT_EQ(inplace_loss, gpu_loss) << "in-place loss differs";
  EXPECT_TRUE(same_bits(ginplace.to_host(), dz_bits)) << "in-place dlogits differs";

  // No gradient: the same loss, the logits untouched.
  const double loss_only = cuda::cross_entropy<T>(nullptr, glogits.data(), gtargets.data(), rows, V,
                                                  grad_scale, work.data(), nullptr);
  EXPECT_EQ(loss_only, gpu_loss) << "loss without dlogits differs";
  EXPECT_TRUE(same_bits(glogits.to_host(), as<T>(logits))) << "logits were written";
}

const CeSize kSizes[] = {
    {1, 1, 0.0},    {5, 1, 0.2},     {3, 7, 0.2},     {33, 7, 0.3},    {6, 7, 1.0},  // all ignored
    {64, 1000, 0.2}, {300, 1000, 0.1}, {4, 32001, 0.0}, {67, 32001, 0.2},
};

#endif  // HYMBA_HAVE_CUDA

TEST(GpuCrossEntropy, FloatMatchesTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const CeSize& sz : kSizes) check_cross_entropy<float>(sz);
#endif
}

TEST(GpuCrossEntropy, Bf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const CeSize& sz : kSizes) check_cross_entropy<bf16>(sz);
#endif
}

TEST(GpuCrossEntropy, NoRowsIsZeroLoss) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  DeviceFloats buf(std::vector<float>(4, 1.0f));
  DeviceArray<int32_t> targets(std::vector<int32_t>(1, 0));
  EXPECT_EQ(cuda::cross_entropy<float>(buf.data(), buf.data(), targets.data(), 0, 4, 1.0, buf.data(), nullptr), 0.0);
  EXPECT_EQ(buf.to_host(), std::vector<float>(4, 1.0f));
#endif
}

}  // namespace
}  // namespace hymba::test
