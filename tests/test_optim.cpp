// AdamW against PyTorch's update rule written out here, weight-decay exemptions by tensor kind,
// the learning-rate schedule and gradient clipping.
#include <gtest/gtest.h>

#include <cmath>

#include "config/config.h"
#include "gradcheck.h"
#include "model/param_layout.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"

namespace hymba::test {
namespace {

// Two tensors: a matrix (decayed) and a norm weight (exempt by default).
ParamLayout two_tensor_layout() {
  ParamLayout l;
  l.tensors.push_back({"w", {3, 2}, 0, 6, ParamKind::matrix, InitRule::normal, {3, 2}, {}, {}});
  l.tensors.push_back({"n", {5}, 64, 5, ParamKind::norm, InitRule::ones, {5}, {}, {}});
  l.count = 11;
  l.storage = 128;
  l.buckets = {{0, 128}};
  return l;
}

TEST(AdamW, MatchesTorchUpdateRuleWithDecayOnlyOnMatrices) {
  const ParamLayout layout = two_tensor_layout();
  OptimConfig o;
  o.weight_decay = 0.1;
  o.beta1 = 0.8, o.beta2 = 0.9, o.eps = 1e-6;
  AdamW<double> opt(layout, o);
  std::vector<double> p = random_vector(128, 1), p_ref = p, m(128, 0.0), v(128, 0.0);
  for (int step = 1; step <= 3; ++step) {
    const auto g = random_vector(128, 10 + step);
    const double lr = 0.01 * step, factor = 0.5;
    opt.step(p.data(), g.data(), lr, factor);
    // torch.optim.AdamW: p *= 1 - lr·wd; m, v updated; p -= lr · m̂ / (sqrt(v̂) + eps)
    for (const ParamTensor& t : layout.tensors) {
      for (int64_t i = t.offset; i < t.offset + t.numel; ++i) {
        const double gi = g[i] * factor;
        if (t.kind == ParamKind::matrix) p_ref[i] *= 1 - lr * o.weight_decay;
        m[i] = o.beta1 * m[i] + (1 - o.beta1) * gi;
        v[i] = o.beta2 * v[i] + (1 - o.beta2) * gi * gi;
        const double mh = m[i] / (1 - std::pow(o.beta1, step)), vh = v[i] / (1 - std::pow(o.beta2, step));
        p_ref[i] -= lr * mh / (std::sqrt(vh) + o.eps);
      }
    }
    for (int64_t i = 0; i < 128; ++i) ASSERT_NEAR(p[i], p_ref[i], 1e-14) << "step " << step << " element " << i;
  }
  EXPECT_EQ(opt.steps_taken(), 3);
}

TEST(AdamW, NoDecayListDecidesByKind) {
  const ParamLayout layout = two_tensor_layout();
  OptimConfig o;
  o.weight_decay = 0.5;
  o.no_decay = {};  // now the norm weight decays too
  AdamW<double> opt(layout, o);
  std::vector<double> p(128, 1.0), g(128, 0.0);  // zero gradient: only decay moves p
  opt.step(p.data(), g.data(), 0.1, 1.0);
  EXPECT_DOUBLE_EQ(p[0], 0.95);
  EXPECT_DOUBLE_EQ(p[64], 0.95);
  o.no_decay = {"matrix_is_not_a_kind", "norm"};
  AdamW<double> opt2(layout, o);
  std::vector<double> q(128, 1.0);
  opt2.step(q.data(), g.data(), 0.1, 1.0);
  EXPECT_DOUBLE_EQ(q[0], 0.95);
  EXPECT_DOUBLE_EQ(q[64], 1.0);
}

TEST(GradNorm, IsTheEuclideanNormOverTensorsAndSkipsPadding) {
  const ParamLayout layout = two_tensor_layout();
  std::vector<double> g(128, 100.0);  // padding holds garbage that must not count
  double want = 0;
  for (const ParamTensor& t : layout.tensors)
    for (int64_t i = t.offset; i < t.offset + t.numel; ++i) g[i] = 0.1 * double(i % 7) - 0.3, want += g[i] * g[i];
  EXPECT_NEAR(global_grad_norm(g.data(), layout), std::sqrt(want), 1e-14);
  EXPECT_DOUBLE_EQ(clip_factor(2.0, 1.0), 1.0 / (2.0 + 1e-6));
  EXPECT_DOUBLE_EQ(clip_factor(0.5, 1.0), 1.0);
  EXPECT_DOUBLE_EQ(clip_factor(5.0, 0.0), 1.0);  // 0 disables clipping
}

TEST(LrSchedule, WarmupThenCosineToMinimum) {
  OptimConfig o;
  o.lr = 1.0, o.min_lr = 0.1, o.warmup_steps = 4;
  const int64_t steps = 15;  // cosine over steps 4..14: 10 intervals
  EXPECT_DOUBLE_EQ(learning_rate(o, 0, steps), 0.25);
  EXPECT_DOUBLE_EQ(learning_rate(o, 3, steps), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(o, 4, steps), 1.0);               // cosine starts at the peak
  EXPECT_NEAR(learning_rate(o, 9, steps), 0.55, 1e-12);  // halfway: the mean of lr and min_lr
  EXPECT_DOUBLE_EQ(learning_rate(o, steps - 1, steps), 0.1);       // last step: the floor
  for (int64_t s = 4; s + 1 < steps; ++s) EXPECT_GE(learning_rate(o, s, steps), learning_rate(o, s + 1, steps));
  o.warmup_steps = 0;
  EXPECT_DOUBLE_EQ(learning_rate(o, 0, steps), 1.0);
}

}  // namespace
}  // namespace hymba::test
