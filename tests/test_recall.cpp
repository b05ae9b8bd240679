// The associative-recall task: the generator (a pure function of (seed, sequence number); keys and
// queries distinct; the right answers, and only they, counted; padding), the task for a row
// length, the task checks, the scoring on logits made by hand, and the model evaluation
// (causal padding: scoring a short task on a long row equals scoring it on its own row).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "cpu/cross_entropy.h"
#include "eval/recall.h"
#include "eval_test_model.h"
#include "test_util.h"

namespace hymba::test {
namespace {

using cpu::kIgnoreIndex;

// Ids 3..10 keys, 11..18 values, sep 2, pad 0: fits a vocabulary of 20.
RecallTask small_task() {
  RecallTask t;
  t.num_keys = 8;
  t.num_values = 8;
  t.key_base = 3;
  t.value_base = 11;
  t.pairs = 5;
  t.queries = 3;
  return t;
}

TEST(RecallBatch, SameArgumentsSameBatchAndRowsIndependentOfBatchSize) {
  const RecallTask t = small_task();
  const int64_t T = t.row_length();
  std::vector<int32_t> ids1, tg1, ids2, tg2;
  recall_batch(t, 3, T, 42, 5, ids1, tg1);
  recall_batch(t, 3, T, 42, 5, ids2, tg2);
  EXPECT_EQ(ids1, ids2);
  EXPECT_EQ(tg1, tg2);
  recall_batch(t, 3, T, 42, 6, ids2, tg2);
  EXPECT_NE(ids1, ids2);
  recall_batch(t, 3, T, 43, 5, ids2, tg2);
  EXPECT_NE(ids1, ids2);

  // Batch 1 of 2 rows holds sequences 2 and 3, as rows 2 and 3 of batch 0 of 4 rows do.
  std::vector<int32_t> four, four_t, two, two_t;
  recall_batch(t, 4, T, 42, 0, four, four_t);
  recall_batch(t, 2, T, 42, 1, two, two_t);
  EXPECT_EQ(two, std::vector<int32_t>(four.begin() + 2 * T, four.end()));
  EXPECT_EQ(two_t, std::vector<int32_t>(four_t.begin() + 2 * T, four_t.end()));
}

// Every row, read back as a sequence: the pairs' keys distinct, the separator in place, queries
// distinct keys of the context, each answer the value paired with its query, targets counted at
// exactly the answers, padding after the sequence.
TEST(RecallBatch, SequencesFollowTheTask) {
  const RecallTask t = small_task();
  const int64_t B = 50, T = t.row_length() + 3;  // 3 positions of padding
  std::vector<int32_t> ids, targets;
  recall_batch(t, B, T, 7, 0, ids, targets);
  ASSERT_EQ(int64_t(ids.size()), B * T);
  ASSERT_EQ(int64_t(targets.size()), B * T);
  std::set<int32_t> values_seen;
  for (int64_t b = 0; b < B; ++b) {
    const int32_t* id = ids.data() + b * T;
    const int32_t* tg = targets.data() + b * T;
    std::vector<int32_t> seq(id, id + t.row_length());
    seq.push_back(tg[t.row_length() - 1]);  // the last token only appears as a target
    ASSERT_EQ(int64_t(seq.size()), t.sequence_length());

    std::map<int32_t, int32_t> value_of;
    for (int64_t p = 0; p < t.pairs; ++p) {
      const int32_t k = seq[2 * p], v = seq[2 * p + 1];
      EXPECT_GE(k, t.key_base);
      EXPECT_LT(k, t.key_base + t.num_keys);
      EXPECT_GE(v, t.value_base);
      EXPECT_LT(v, t.value_base + t.num_values);
      EXPECT_TRUE(value_of.emplace(k, v).second) << "key " << k << " twice in row " << b;
      values_seen.insert(v);
    }
    EXPECT_EQ(seq[2 * t.pairs], t.sep);
    std::set<int32_t> queried;
    for (int64_t q = 0; q < t.queries; ++q) {
      const int32_t k = seq[2 * t.pairs + 1 + 2 * q], a = seq[2 * t.pairs + 2 + 2 * q];
      ASSERT_TRUE(value_of.count(k)) << "query " << k << " not in the context of row " << b;
      EXPECT_EQ(a, value_of[k]);
      EXPECT_TRUE(queried.insert(k).second) << "query " << k << " twice in row " << b;
    }
    for (int64_t i = 0; i < T; ++i) {
      const bool answer = i >= 2 * t.pairs + 1 && i < t.row_length() && (i - 2 * t.pairs) % 2 == 1;
      EXPECT_EQ(tg[i], answer ? seq[i + 1] : kIgnoreIndex) << "row " << b << " position " << i;
      if (i >= t.row_length()) {
        EXPECT_EQ(id[i], t.pad);
      }
    }
  }
  EXPECT_EQ(int64_t(values_seen.size()), t.num_values);  // values are drawn over their whole range
}

TEST(RecallBatch, RowsShorterThanTheTaskAreRefused) {
  const RecallTask t = small_task();
  std::vector<int32_t> ids, targets;
  EXPECT_THROW(recall_batch(t, 1, t.row_length() - 1, 1, 0, ids, targets), Error);
}

TEST(RecallTask, ForRowKeepsQueriesAndFillsTheRowWithPairs) {
  RecallTask base;  // 8 queries
  const RecallTask a = recall_task_for_row(base, 64);
  EXPECT_EQ(a.queries, 8);
  EXPECT_EQ(a.pairs, 24);
  EXPECT_EQ(a.row_length(), 64);
  const RecallTask b = recall_task_for_row(base, 65);  // odd: one pad at the end
  EXPECT_EQ(b.pairs, 24);
  EXPECT_EQ(b.row_length(), 64);
  EXPECT_EQ(recall_task_for_row(base, 32).pairs, 8);
  EXPECT_THROW(recall_task_for_row(base, 31), Error);  // 7 pairs < 8 queries
  EXPECT_EQ(recall_task_for_row(base, 145).pairs, 64);
  expect_error([&] { recall_task_for_row(base, 146); }, {"pairs (65)", "num_keys (64)"});
}

TEST(RecallTask, ChecksNameTheProblem) {
  const RecallTask ok = small_task();
  EXPECT_NO_THROW(check_recall_task(ok, 20));
  expect_error([&] { check_recall_task(ok, 18); }, {"[0, 19)", "vocabulary [0, 18)"});
  RecallTask t = ok;
  t.pairs = 9;  // more pairs than distinct keys
  expect_error([&] { check_recall_task(t, 0); }, {"pairs (9)", "num_keys (8)"});
  t = ok;
  t.queries = 6;  // more queries than pairs
  expect_error([&] { check_recall_task(t, 0); }, {"queries (6)", "pairs = 5"});
  t = ok;
  t.value_base = 10;  // overlaps the last key
  expect_error([&] { check_recall_task(t, 0); }, {"values [10, 18)", "overlap"});
  t = ok;
  t.sep = 5;  // a key
  expect_error([&] { check_recall_task(t, 0); }, {"sep 5", "overlap"});
}

// Scoring on logits made by hand: an oracle scores 1, a wrong answer 0, uniform logits give
// loss ln V and the lowest id as argmax; random logits score about 1 / V.
TEST(RecallScore, OracleWrongUniformAndRandomLogits) {
  const RecallTask t = small_task();
  const int64_t B = 40, T = t.row_length(), V = 20;
  std::vector<int32_t> ids, targets;
  recall_batch(t, B, T, 3, 0, ids, targets);
  const int64_t answers = B * t.queries;

  auto score = [&](auto logit_of) {
    std::vector<float> logits(B * T * V);
    for (int64_t r = 0; r < B * T; ++r) {
      for (int64_t v = 0; v < V; ++v) logits[r * V + v] = logit_of(r, v);
    }
    RecallResult res;
    score_recall(logits.data(), targets.data(), B * T, V, res);
    return res;
  };
  const RecallResult oracle =
      score([&](int64_t r, int64_t v) { return targets[r] == v ? 30.f : 0.f; });
  EXPECT_EQ(oracle.answers, answers);
  EXPECT_EQ(oracle.correct, answers);
  EXPECT_DOUBLE_EQ(oracle.accuracy(), 1.0);
  EXPECT_NEAR(oracle.loss(), std::log1p(19 * std::exp(-30.0)), 1e-12);

  // The answer's neighbour in the value range is always another value, never the answer.
  const RecallResult wrong = score([&](int64_t r, int64_t v) {
    const int64_t right = targets[r] == kIgnoreIndex ? 0 : targets[r];
    const int64_t other = t.value_base + (right - t.value_base + 1) % t.num_values;
    return v == other ? 5.f : 0.f;
  });
  EXPECT_EQ(wrong.correct, 0);
  EXPECT_NEAR(wrong.loss(), 5.0 + std::log1p(19 * std::exp(-5.0)), 1e-6);

  const RecallResult uniform = score([](int64_t, int64_t) { return 0.25f; });
  EXPECT_NEAR(uniform.loss(), std::log(20.0), 1e-6);

  // A tie goes to the lower id: the answer wins against id + 1 and loses against id − 1.
  auto tie_with = [&](int64_t offset) {
    return score([&, offset](int64_t r, int64_t v) {
      const bool tied = v == targets[r] || v == targets[r] + offset;
      return targets[r] != kIgnoreIndex && tied ? 1.f : 0.f;
    });
  };
  EXPECT_EQ(tie_with(+1).correct, answers);
  EXPECT_EQ(tie_with(-1).correct, 0);

  RecallResult random;
  for (uint64_t rep = 0; rep < 25; ++rep) {
    const RecallResult r = score([&](int64_t row, int64_t v) {
      return float(normal01(rep, 9, uint64_t(row * V + v)));
    });
    random.answers += r.answers;
    random.correct += r.correct;
  }
  // 3000 answers at p = 1/20: mean 150, standard deviation 11.9.
  EXPECT_NEAR(random.accuracy(), 1.0 / 20, 4 * std::sqrt(0.05 * 0.95 / double(random.answers)));
}

// The model scores agree with its own cross-entropy kernel, and a task scored on a longer row
// (padded) gives what a model built for exactly that row gives: padding after the sequence
// cannot reach back through the causal forward.
TEST(RecallEvaluate, MatchesTheModelLossAndIgnoresPadding) {
  const RecallTask t = small_task();
  HymbaModel<float> exact(eval_test_config(20), 2, t.row_length());
  exact.init(11);
  const auto padded = same_params(exact, 2, t.row_length() + 9);

  const int64_t batches = 3;
  const uint64_t seed = 5;
  const RecallResult a = evaluate_recall(exact, t, batches, seed);
  const RecallResult b = evaluate_recall(*padded, t, batches, seed);
  EXPECT_EQ(a.answers, batches * 2 * t.queries);
  EXPECT_EQ(a.answers, b.answers);
  EXPECT_EQ(a.correct, b.correct);
  EXPECT_NEAR(a.loss_sum, b.loss_sum, 1e-5 * a.loss_sum);

  double kernel_loss = 0;
  std::vector<int32_t> ids, targets;
  for (int64_t i = 0; i < batches; ++i) {
    recall_batch(t, 2, t.row_length(), seed, uint64_t(i), ids, targets);
    kernel_loss += exact.forward(ids.data(), targets.data());
  }
  EXPECT_NEAR(a.loss_sum, kernel_loss, 1e-5 * kernel_loss);

  EXPECT_THROW(evaluate_recall(exact, recall_task_for_row(t, t.row_length() + 2), 1, seed), Error);
  HymbaModel<float> small_vocab(eval_test_config(18), 1, t.row_length());
  EXPECT_THROW(evaluate_recall(small_vocab, t, 1, seed), Error);
}

}  // namespace
}  // namespace hymba::test
