// Generation: the sampling distribution on hand-made logits (temperature, top-k, top-p, their
// order, ties, greedy), the inverse-CDF draw, and generation with a model: greedy equals the
// argmax of one forward over the finished sequence, top-k 1 equals greedy, a seed fixes the
// text, and each stop condition.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "core/error.h"
#include "eval/generate.h"
#include "eval_test_model.h"

namespace hymba::test {
namespace {

// p = [0.1, 0.4, 0.05, 0.3, 0.15] as logits: most likely first the ids are 1, 3, 4, 0, 2.
std::vector<float> hand_logits() {
  std::vector<float> z;
  for (double p : {0.1, 0.4, 0.05, 0.3, 0.15}) z.push_back(float(std::log(p)));
  return z;
}

void expect_distribution(const std::vector<TokenProb>& got,
                         const std::vector<std::pair<int32_t, double>>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].id, want[i].first) << "entry " << i;
    EXPECT_NEAR(got[i].p, want[i].second, 1e-6) << "entry " << i;
  }
}

TEST(Sampling, TemperatureTopKTopPOnHandMadeLogits) {
  const std::vector<float> z = hand_logits();
  SamplingOptions o;
  expect_distribution(sampling_distribution(z, o),
                      {{1, 0.4}, {3, 0.3}, {4, 0.15}, {0, 0.1}, {2, 0.05}});

  o.top_p = 0.8;  // 0.4 + 0.3 = 0.7 < 0.8 <= 0.85: three ids
  expect_distribution(sampling_distribution(z, o),
                      {{1, 0.4 / 0.85}, {3, 0.3 / 0.85}, {4, 0.15 / 0.85}});
  o.top_p = 0.35;  // the top id alone already reaches it
  expect_distribution(sampling_distribution(z, o), {{1, 1.0}});
  // "Reaches" includes equality: four ids of exactly 0.25 and p = 0.5 keep two.
  o.top_p = 0.5;
  expect_distribution(sampling_distribution(std::vector<float>(4, 1.f), o), {{0, 0.5}, {1, 0.5}});

  o = {};
  o.top_k = 2;
  expect_distribution(sampling_distribution(z, o), {{1, 0.4 / 0.7}, {3, 0.3 / 0.7}});
  // top-p applies to what top-k leaves: 0.571 >= 0.5 keeps one id (on the unfiltered
  // distribution, 0.4 < 0.5 would have kept two).
  o.top_p = 0.5;
  expect_distribution(sampling_distribution(z, o), {{1, 1.0}});

  o = {};
  o.temperature = 2;  // p^(1/2), renormalised
  double sum = 0;
  for (double p : {0.1, 0.4, 0.05, 0.3, 0.15}) sum += std::sqrt(p);
  expect_distribution(sampling_distribution(z, o),
                      {{1, std::sqrt(0.4) / sum}, {3, std::sqrt(0.3) / sum},
                       {4, std::sqrt(0.15) / sum}, {0, std::sqrt(0.1) / sum},
                       {2, std::sqrt(0.05) / sum}});

  o.temperature = 0;  // greedy, whatever the filters
  o.top_k = 3;
  expect_distribution(sampling_distribution(z, o), {{1, 1.0}});
}

TEST(Sampling, TiesGoToTheLowerIdAndBadOptionsAreRefused) {
  const std::vector<float> z = {0.f, 2.f, 1.f, 2.f};
  SamplingOptions o;
  o.temperature = 0;
  expect_distribution(sampling_distribution(z, o), {{1, 1.0}});
  o.temperature = 1;
  o.top_k = 2;
  expect_distribution(sampling_distribution(z, o), {{1, 0.5}, {3, 0.5}});

  for (SamplingOptions bad : {SamplingOptions{-1, 0, 1}, SamplingOptions{1, -1, 1},
                              SamplingOptions{1, 0, 0}, SamplingOptions{1, 0, 1.5}}) {
    EXPECT_THROW(sampling_distribution(z, bad), Error);
  }
}

TEST(Sampling, DrawIsTheInverseCdf) {
  const std::vector<TokenProb> d = {{7, 0.5}, {3, 0.3}, {9, 0.2}};
  EXPECT_EQ(sample_token(d, 0.0), 7);
  EXPECT_EQ(sample_token(d, 0.49), 7);
  EXPECT_EQ(sample_token(d, 0.5), 3);
  EXPECT_EQ(sample_token(d, 0.79), 3);
  EXPECT_EQ(sample_token(d, 0.81), 9);
  EXPECT_EQ(sample_token(d, 0.999999), 9);
}

class GenerateTest : public ::testing::Test {
 protected:
  static constexpr int64_t T = 16, V = 24;
  GenerateTest() : model_(eval_test_config(V), 1, T) { model_.init(3); }

  Generation run(const std::vector<int32_t>& prompt, SamplingOptions s, int64_t max_new,
                 uint64_t seed = 0, int32_t eot = -1) {
    GenerateOptions o;
    o.sampling = s;
    o.max_new_tokens = max_new;
    o.seed = seed;
    o.eot_id = eot;
    return generate(model_, prompt, o);
  }

  HymbaModel<float> model_;
  const std::vector<int32_t> prompt_ = {5, 9, 2};
};

TEST_F(GenerateTest, GreedyIsTheArgmaxOfOneForwardOverTheResult) {
  const Generation g = run(prompt_, {0, 0, 1}, 10);
  ASSERT_EQ(g.tokens.size(), 10u);
  EXPECT_EQ(g.stop, StopReason::max_new_tokens);
  EXPECT_EQ(run(prompt_, {0, 0, 1}, 10).tokens, g.tokens);

  // One forward over prompt + generated tokens, on a model of exactly that row length: each
  // generated token is the argmax at the position before it.
  std::vector<int32_t> seq = prompt_;
  seq.insert(seq.end(), g.tokens.begin(), g.tokens.end() - 1);
  const auto check = same_params(model_, 1, int64_t(seq.size()));
  check->forward(seq.data(), nullptr);
  std::set<int32_t> distinct;
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    const float* z = check->logits() + (prompt_.size() - 1 + i) * check->logits_stride();
    EXPECT_EQ(g.tokens[i], std::max_element(z, z + V) - z) << "token " << i;
    distinct.insert(g.tokens[i]);
  }
  EXPECT_GT(distinct.size(), 1u);  // the model's output depends on its input

  EXPECT_EQ(run(prompt_, {1.5, 1, 1}, 10, 99).tokens, g.tokens);  // top-k 1 is greedy
}

TEST_F(GenerateTest, SeedFixesTheSample) {
  const Generation a = run(prompt_, {1, 0, 1}, 12, 7);
  EXPECT_EQ(run(prompt_, {1, 0, 1}, 12, 7).tokens, a.tokens);
  EXPECT_NE(run(prompt_, {1, 0, 1}, 12, 8).tokens, a.tokens);
  EXPECT_NE(run(prompt_, {0, 0, 1}, 12, 7).tokens, a.tokens);  // sampling is not greedy
}

TEST_F(GenerateTest, StopsAtEndOfTextAndWhenTheRowIsFull) {
  const Generation greedy = run(prompt_, {0, 0, 1}, 10);
  // Declaring the 4th greedy token end-of-text stops right before its first occurrence.
  const int32_t eot = greedy.tokens[3];
  const auto first = std::find(greedy.tokens.begin(), greedy.tokens.end(), eot);
  const Generation g = run(prompt_, {0, 0, 1}, 10, 0, eot);
  EXPECT_EQ(g.stop, StopReason::end_of_text);
  EXPECT_EQ(g.tokens, std::vector<int32_t>(greedy.tokens.begin(), first));

  // A prompt of T − 2 ids leaves positions T − 3, T − 2, T − 1 to predict from: 3 new tokens.
  const std::vector<int32_t> long_prompt(T - 2, 4);
  const Generation full = run(long_prompt, {1, 0, 1}, 100, 1);
  EXPECT_EQ(full.stop, StopReason::row_full);
  EXPECT_EQ(full.tokens.size(), 3u);
  EXPECT_STREQ(stop_reason_name(full.stop), "row_full");

  EXPECT_THROW(run(std::vector<int32_t>(T + 1, 4), {}, 1), Error);
  EXPECT_THROW(run({}, {}, 1), Error);
  HymbaModel<float> two_rows(eval_test_config(V), 2, T);
  EXPECT_THROW(generate(two_rows, prompt_, {}), Error);
}

}  // namespace
}  // namespace hymba::test
