#include "eval/recall.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "core/error.h"
#include "core/rng.h"
#include "cpu/cross_entropy.h"
#ifdef HYMBA_HAVE_CUDA
#include "model/cuda_model.h"
#endif

namespace hymba {

namespace {

using cpu::kIgnoreIndex;

bool overlap(int64_t a_begin, int64_t a_count, int64_t b_begin, int64_t b_count) {
  return a_begin < b_begin + b_count && b_begin < a_begin + a_count;
}

// The first `count` entries of `items` become a uniform random selection without replacement
// (a partial Fisher-Yates shuffle).
void choose_first(std::vector<int32_t>& items, int64_t count, CounterRng& rng) {
  const auto n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < count; ++i) {
    const auto j = i + static_cast<int64_t>(rng.below(static_cast<uint64_t>(n - i)));
    std::swap(items[i], items[j]);
  }
}

// Sequence number `n` of stream `seed` written as one model row: ids [T], targets [T].
void write_row(const RecallTask& t, uint64_t seed, uint64_t n, int64_t T, int32_t* ids,
               int32_t* targets) {
  CounterRng rng(seed, hash_name("recall") + n);
  std::vector<int32_t> keys(static_cast<size_t>(t.num_keys));
  std::iota(keys.begin(), keys.end(), static_cast<int32_t>(t.key_base));
  choose_first(keys, t.pairs, rng);  // keys[0:pairs] = the context's keys, in order
  std::vector<int32_t> seq;          // [L]
  seq.reserve(static_cast<size_t>(t.sequence_length()));
  std::vector<int32_t> value(static_cast<size_t>(t.pairs));
  for (int64_t p = 0; p < t.pairs; ++p) {
    const auto v = static_cast<int64_t>(rng.below(static_cast<uint64_t>(t.num_values)));
    value[p] = static_cast<int32_t>(t.value_base + v);
    seq.push_back(keys[p]);
    seq.push_back(value[p]);
  }
  seq.push_back(t.sep);
  std::vector<int32_t> slots(static_cast<size_t>(t.pairs));
  std::iota(slots.begin(), slots.end(), 0);
  choose_first(slots, t.queries, rng);  // slots[0:queries] = the queried pairs
  for (int64_t q = 0; q < t.queries; ++q) {
    seq.push_back(keys[slots[q]]);
    seq.push_back(value[slots[q]]);
  }

  // The separator is seq[2·pairs]; answer q is seq[2·pairs + 2 + 2q].
  const int64_t first_answer = 2 * t.pairs + 2;
  for (int64_t i = 0; i < T; ++i) {
    const int64_t next = i + 1;  // the position targets[i] predicts
    ids[i] = i < t.row_length() ? seq[i] : t.pad;
    const bool answer = next >= first_answer && next < t.sequence_length() &&
                        (next - first_answer) % 2 == 0;
    targets[i] = answer ? seq[next] : kIgnoreIndex;
  }
}

}  // namespace

void check_recall_task(const RecallTask& t, int64_t vocab_size) {
  if (t.num_keys < 1 || t.num_values < 1) {
    fail("recall task: num_keys (", t.num_keys, ") and num_values (", t.num_values,
         ") must be at least 1");
  }
  if (t.queries < 1 || t.queries > t.pairs) {
    fail("recall task: queries (", t.queries, ") must be in [1, pairs = ", t.pairs,
         "]: queries are distinct keys of the context");
  }
  if (t.pairs > t.num_keys) {
    fail("recall task: pairs (", t.pairs, ") exceed num_keys (", t.num_keys,
         "): keys within a sequence are distinct");
  }
  if (overlap(t.key_base, t.num_keys, t.value_base, t.num_values) ||
      overlap(t.key_base, t.num_keys, t.sep, 1) || overlap(t.value_base, t.num_values, t.sep, 1)) {
    fail("recall task: keys [", t.key_base, ", ", t.key_base + t.num_keys, "), values [",
         t.value_base, ", ", t.value_base + t.num_values, ") and sep ", t.sep,
         " must not overlap");
  }
  const int64_t lowest = std::min({t.key_base, t.value_base, int64_t{t.sep}, int64_t{t.pad}});
  const int64_t end = std::max({t.key_base + t.num_keys, t.value_base + t.num_values,
                                int64_t{t.sep} + 1, int64_t{t.pad} + 1});
  if (lowest < 0 || (vocab_size > 0 && end > vocab_size)) {
    fail("recall task: ids span [", lowest, ", ", end, "), outside the model's vocabulary [0, ",
         vocab_size, ")");
  }
}

RecallTask recall_task_for_row(const RecallTask& task, int64_t T) {
  RecallTask t = task;
  t.pairs = (T - 2 * task.queries) / 2;
  if (t.pairs < t.queries) {
    fail("recall task: a row of ", T, " tokens holds ", std::max<int64_t>(t.pairs, 0),
         " pairs, fewer than the ", t.queries, " queries (rows need at least ",
         4 * task.queries, " tokens)");
  }
  check_recall_task(t, 0);  // a long row may need more distinct keys than the task has
  return t;
}

void recall_batch(const RecallTask& task, int64_t B, int64_t T, uint64_t seed, uint64_t index,
                  std::vector<int32_t>& ids, std::vector<int32_t>& targets) {
  check_recall_task(task, 0);
  if (T < task.row_length()) {
    fail("recall task: ", task.pairs, " pairs and ", task.queries, " queries need rows of ",
         task.row_length(), " tokens; the rows have ", T);
  }
  ids.resize(static_cast<size_t>(B * T));
  targets.resize(static_cast<size_t>(B * T));
  for (int64_t b = 0; b < B; ++b) {
    write_row(task, seed, index * static_cast<uint64_t>(B) + static_cast<uint64_t>(b), T,
              ids.data() + b * T, targets.data() + b * T);
  }
}

void score_recall(const float* logits, const int32_t* targets, int64_t rows, int64_t V,
                  RecallResult& into) {
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t target = targets[r];
    if (target == kIgnoreIndex) continue;
    if (target < 0 || target >= V) {
      fail("recall scoring: target ", target, " of row ", r, " is outside [0, ", V, ")");
    }
    const float* z = logits + r * V;  // [V]
    int64_t best = 0;
    for (int64_t v = 1; v < V; ++v) best = z[v] > z[best] ? v : best;  // lowest id on ties
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(z[v]) - double(z[best]));
    into.answers += 1;
    into.correct += best == target;
    into.loss_sum += double(z[best]) + std::log(sum) - double(z[target]);
  }
}

template <class Model>
RecallResult evaluate_recall(Model& model, const RecallTask& task, int64_t batches, uint64_t seed, int rank,
                             int world) {
  check_recall_task(task, model.config().vocab_size);
  const int64_t B = model.batch(), T = model.seq_len(), V = model.config().vocab_size;
  RecallResult result;
  std::vector<int32_t> ids, targets;  // [B, T]
  for (int64_t i = 0; i < batches; ++i) {
    recall_batch(task, B, T, seed, static_cast<uint64_t>(i * world + rank), ids, targets);
    model.forward(ids.data(), nullptr);
    score_recall(model.host_logits(), targets.data(), B * T, V, result);
  }
  return result;
}

template RecallResult evaluate_recall(HymbaModel<float>&, const RecallTask&, int64_t, uint64_t, int, int);
#ifdef HYMBA_HAVE_CUDA
template RecallResult evaluate_recall(CudaHymbaModel&, const RecallTask&, int64_t, uint64_t, int, int);
template RecallResult evaluate_recall(CudaBf16HymbaModel&, const RecallTask&, int64_t, uint64_t, int, int);
#endif

}  // namespace hymba
