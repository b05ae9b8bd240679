// Validation loss and perplexity: the mean cross-entropy over the first N batches of shard rows
// in order equals a hand computation (rows cut from the tokens written, log-softmax in double, a
// model of another batch shape), batches past the end are clamped, and shards that do not fit
// the model are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/shard.h"
#include "eval/perplexity.h"
#include "eval_test_model.h"
#include "test_util.h"

namespace hymba::test {
namespace {

constexpr int64_t T = 8, V = 24;

class PerplexityTest : public TempDirTest {
 protected:
  PerplexityTest() : model_(eval_test_config(V), 2, T) {
    model_.init(5);
    // Rows in order: a0 .. a4 (the 2 tokens left over hold no row), b0 .. b3.
    write_shard_of("val-00000.h5", 5 * T + 3, 0);
    write_shard_of("val-00001.h5", 4 * T + 1, 1);
  }

  // A shard of n tokens drawn from `stream`, recorded in shard_tokens_ and shards_.
  void write_shard_of(const std::string& name, int64_t n, uint64_t stream, int64_t vocab = V) {
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) tokens[i] = int32_t(uniform01(17, stream, i) * double(V));
    ShardInfo info;
    info.vocab_size = vocab;
    info.tokenizer = "0123456789abcdef";
    info.split = "val";
    write_shard(path(name), tokens, {0, n}, info);
    shard_tokens_.push_back(tokens);
    shards_.push_back(path(name));
  }

  // Mean loss over rows (shard, row) computed row by row on a batch-1 model.
  double hand_loss(const std::vector<std::pair<int, int64_t>>& rows) const {
    const auto one = same_params(model_, 1, T);
    double sum = 0;
    for (const auto& [s, r] : rows) {
      const int32_t* row = shard_tokens_[s].data() + r * T;  // T + 1 tokens
      one->forward(row, nullptr);
      for (int64_t t = 0; t < T; ++t) {
        const float* z = one->logits() + t * one->logits_stride();  // its first V columns: the vocabulary
        double m = z[0], e = 0;
        for (int64_t v = 1; v < V; ++v) m = std::max(m, double(z[v]));
        for (int64_t v = 0; v < V; ++v) e += std::exp(double(z[v]) - m);
        sum += m + std::log(e) - z[row[t + 1]];
      }
    }
    return sum / double(rows.size() * T);
  }

  HymbaModel<float> model_;
  std::vector<std::vector<int32_t>> shard_tokens_;
  std::vector<std::string> shards_;
};

TEST_F(PerplexityTest, FirstBatchesInShardOrderMatchAHandComputation) {
  const PerplexityResult one = evaluate_perplexity(model_, shards_, 1);
  EXPECT_EQ(one.batches, 1);
  EXPECT_EQ(one.tokens, 2 * T);
  EXPECT_NEAR(one.loss, hand_loss({{0, 0}, {0, 1}}), 1e-5);

  // The third batch crosses into the second shard.
  const PerplexityResult three = evaluate_perplexity(model_, shards_, 3);
  EXPECT_EQ(three.tokens, 6 * T);
  EXPECT_NEAR(three.loss, hand_loss({{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {1, 0}}), 1e-5);
  EXPECT_DOUBLE_EQ(three.perplexity(), std::exp(three.loss));

  // More batches than the rows hold, or 0: every full batch (the 9th row makes none).
  const double want = hand_loss({{0, 0}, {0, 1}, {0, 2}, {0, 3}, {0, 4}, {1, 0}, {1, 1}, {1, 2}});
  for (int64_t batches : {100, 0}) {
    const PerplexityResult all = evaluate_perplexity(model_, shards_, batches);
    EXPECT_EQ(all.batches, 4) << batches;
    EXPECT_EQ(all.tokens, 8 * T);
    EXPECT_NEAR(all.loss, want, 1e-5);
  }
  // The rows' losses differ, so the checks can tell which rows were used.
  EXPECT_GT(std::abs(want - one.loss), 1e-3);
  EXPECT_GT(std::abs(want - three.loss), 1e-3);
}

TEST_F(PerplexityTest, ShardsThatDoNotFitTheModelAreRefused) {
  EXPECT_NO_THROW(evaluate_perplexity(model_, shards_, 1, "0123456789abcdef"));
  expect_error([&] { evaluate_perplexity(model_, shards_, 1, "fedcba9876543210"); },
               {"val-00000.h5", "tokenizer 0123456789abcdef"});
  write_shard_of("val-00002.h5", 2 * T + 1, 2, V + 1);  // a vocabulary larger than the model's
  expect_error([&] { evaluate_perplexity(model_, shards_, 1); },
               {"val-00002.h5", "vocab_size 25"});
}

}  // namespace
}  // namespace hymba::test
