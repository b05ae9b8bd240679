// Fused softmax + cross-entropy: value, gradient, ignored rows, bad targets.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "cpu/cross_entropy.h"
#include "gradcheck.h"

namespace hymba::test {
namespace {

TEST(CrossEntropy, ValueMatchesNaiveLogSoftmax) {
  const int64_t rows = 4, V = 9;
  const auto z = random_vector(rows * V, 1, 8.0);
  const std::vector<int32_t> t = {0, 8, 3, 3};
  double want = 0;
  for (int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(z[r * V + v]);
    want += std::log(s) - z[r * V + t[r]];
  }
  EXPECT_NEAR(cpu::cross_entropy<double>(nullptr, z.data(), t.data(), rows, V, 0.0), want, 1e-12);
  const auto zf = cast_vector<float>(z);
  EXPECT_NEAR(cpu::cross_entropy<float>(nullptr, zf.data(), t.data(), rows, V, 0.0), want, 1e-4);
}

TEST(CrossEntropy, GradientMatchesFiniteDifferencesAndIgnoresRows) {
  const int64_t rows = 5, V = 7;
  auto z = random_vector(rows * V, 2, 3.0);
  const std::vector<int32_t> t = {1, cpu::kIgnoreIndex, 6, 0, 2};
  const double scale = 0.25;
  auto loss = [&] { return scale * cpu::cross_entropy<double>(nullptr, z.data(), t.data(), rows, V, 0.0); };
  std::vector<double> dz = z;  // in place, as the model uses it
  cpu::cross_entropy<double>(dz.data(), dz.data(), t.data(), rows, V, scale);
  for (int64_t v = 0; v < V; ++v) EXPECT_EQ(dz[1 * V + v], 0.0);  // ignored row
  check_gradients({{"logits", &z, &dz}}, loss);
}

TEST(CrossEntropy, TargetOutsideVocabularyNamesItsRow) {
  const std::vector<double> z(3 * 4, 0.5);
  const std::vector<int32_t> t = {0, 1, 4};
  EXPECT_THROW(
      {
        try {
          cpu::cross_entropy<double>(nullptr, z.data(), t.data(), 3, 4, 0.0);
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("at row 2"), std::string::npos);
          throw;
        }
      },
      Error);
}

}  // namespace
}  // namespace hymba::test
