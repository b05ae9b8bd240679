// The synthetic associative-recall task (the Hymba paper's argument for attention + SSM heads):
// a context of key-value pairs, then queries of keys seen earlier; the model must produce each
// queried key's value. Sequences are generated, so a model can be trained on the task and then
// scored at several context lengths.
//
// Token ids (all inside the model's vocabulary):
//   keys   [key_base, key_base + num_keys), values [value_base, value_base + num_values),
//   separator `sep` between the pairs and the queries, `pad` after the sequence.
// Sequence: k1 v1 k2 v2 ... kn vn sep q1 a1 q2 a2 ... where each q is one of the k and a its v.
// Within a sequence the keys are distinct and so are the queries (a repeated query could be
// answered by copying the earlier answer instead of recalling the context); values are drawn
// independently, so chance accuracy is 1 / num_values.
// Only the answer positions count: targets elsewhere are ignored (kIgnoreIndex).
#pragma once

#include <cstdint>
#include <vector>

#include "model/hymba_model.h"

namespace hymba {

struct RecallTask {
  int64_t num_keys = 64;
  int64_t num_values = 64;
  int64_t key_base = 3;    // after the <|pad|>, <|bos|>, <|endoftext|> ids
  int64_t value_base = 67;
  int32_t sep = 2;
  int32_t pad = 0;         // fills a row beyond the sequence (its targets are ignored)
  int64_t pairs = 16;      // key-value pairs in the context
  int64_t queries = 8;     // queries after the separator

  int64_t sequence_length() const { return 2 * pairs + 1 + 2 * queries; }
  // Model row T = L − 1: ids = seq[0:T], targets = seq[1:L], as for a training row.
  int64_t row_length() const { return sequence_length() - 1; }
};

// Checks that the task can be generated (1 ≤ queries ≤ pairs ≤ num_keys; keys, values and sep
// disjoint) and, when vocab_size > 0, that every id is inside [0, vocab_size). Errors name the
// offending field.
void check_recall_task(const RecallTask& task, int64_t vocab_size);

// The same task with as many pairs as fit a row of T tokens, the queries kept: the context grows
// with T while the number of scored answers per row stays the same. Pairs = (T − 2·queries) / 2,
// so a row of odd T ends with one pad. An Error when the row is too short for the queries or
// needs more pairs than num_keys.
RecallTask recall_task_for_row(const RecallTask& task, int64_t T);

// Batch `index` of B rows of T ≥ task.row_length() tokens: ids [B, T], targets [B, T] (resized).
// Row b is sequence number index·B + b of the stream `seed`; a sequence is a pure function of
// (seed, sequence number), so any batch can be regenerated alone and B does not change the
// stream. Positions past the sequence hold `pad` with ignored targets.
void recall_batch(const RecallTask& task, int64_t B, int64_t T, uint64_t seed, uint64_t index,
                  std::vector<int32_t>& ids, std::vector<int32_t>& targets);

// The stream evaluations draw from by default. Training should draw from another (e.g. the run's
// train.seed), so that a score is never taken on sequences the model was trained on.
inline constexpr uint64_t kRecallEvalSeed = 0x7265'6361'6c6c'6576;  // "recallev"

// Scores accumulated over batches: argmax accuracy and cross-entropy at the answer positions.
struct RecallResult {
  int64_t answers = 0;   // scored answer positions
  int64_t correct = 0;   // answers whose argmax logit (lowest id on ties) is the answer
  double loss_sum = 0;   // Σ (logsumexp − logit[answer])

  double accuracy() const { return answers ? double(correct) / double(answers) : 0.0; }
  double loss() const { return answers ? loss_sum / double(answers) : 0.0; }
};

// Adds the scores of logits [rows, V] at the counted targets [rows] (others skipped) to `into`.
// Separate from the model so the scoring can be checked on logits made by hand.
void score_recall(const float* logits, const int32_t* targets, int64_t rows, int64_t V,
                  RecallResult& into);

// Scores `model` on batches 0 .. batches − 1 of recall_batch(task, model.batch(),
// model.seq_len(), seed, ...). The task may be shorter than the model's row: the forward is
// causal, so the padding after a sequence does not change its logits.
// Data-parallel rank `rank` of `world` scores rows [rank·B, (rank + 1)·B) of each batch of
// world·B rows (B = model.batch()), so the ranks' results added together are the
// single-process result with batches of world·B rows.
// Model: HymbaModel<float> or (built with CUDA) CudaHymbaModel, CudaBf16HymbaModel.
template <class Model>
RecallResult evaluate_recall(Model& model, const RecallTask& task, int64_t batches, uint64_t seed,
                             int rank = 0, int world = 1);

}  // namespace hymba
