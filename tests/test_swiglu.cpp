#include <gtest/gtest.h>

#include "cpu/activations.h"
#include "cpu/swiglu.h"
#include "gradcheck.h"

namespace hymba::test {
namespace {

TEST(SwiGlu, ForwardIsSiluGateTimesUp) {
  auto g = random_vector(37, 1, 4.0), up = random_vector(37, 2);
  std::vector<double> a(37);
  cpu::swiglu_forward(a.data(), g.data(), up.data(), 37);
  for (int i = 0; i < 37; ++i) EXPECT_NEAR(a[i], g[i] / (1 + std::exp(-g[i])) * up[i], 1e-14);
}

TEST(SwiGlu, BackwardMatchesFiniteDifferences) {
  const int64_t n = 41;
  auto g = random_vector(n, 3, 5.0), up = random_vector(n, 4);
  const auto r = random_vector(n, 5);
  auto loss = [&] {
    std::vector<double> a(n);
    cpu::swiglu_forward(a.data(), g.data(), up.data(), n);
    return dot(a, r);
  };
  std::vector<double> dg(n), dup(n);
  cpu::swiglu_backward(dg.data(), dup.data(), r.data(), g.data(), up.data(), n);
  check_gradients({{"gate", &g, &dg}, {"up", &up, &dup}}, loss);
}

TEST(Activations, SoftplusFollowsPyTorchThreshold) {
  EXPECT_DOUBLE_EQ(cpu::softplus(25.0), 25.0);
  EXPECT_NEAR(cpu::softplus(0.0), std::log(2.0), 1e-15);
  EXPECT_NEAR(cpu::softplus(19.0), std::log1p(std::exp(19.0)), 1e-12);
  EXPECT_DOUBLE_EQ(cpu::softplus_grad(25.0), 1.0);
  EXPECT_NEAR(cpu::softplus_grad(-1.0), 1 / (1 + std::exp(1.0)), 1e-15);
}

}  // namespace
}  // namespace hymba::test
