// Fused softmax + cross-entropy over the vocabulary, with the logits gradient in the same pass
// (HYMBA_SPEC §2.9). Rows whose target is kIgnoreIndex (−100, PyTorch's default) add no loss and
// get a zero gradient.
#pragma once

#include <cstdint>

#include "cpu/vocab_range.h"

namespace hymba::cpu {

inline constexpr int32_t kIgnoreIndex = -100;

// logits [rows, V]; targets [rows]. Returns Σ over counted rows of (logsumexp − logit[target]),
// in double. If dlogits is not null it receives (softmax − onehot(target)) · grad_scale
// ([rows, V], may alias logits): grad_scale = 1 / (number of counted targets in the whole step)
// gives the gradient of the mean loss. A target outside [0, V) is an error naming its row.
// A target outside [0, V) (other than kIgnoreIndex) is an Error naming its row. The CUDA path
// calls this on the host before it uploads the targets.
void check_targets(const int32_t* targets, int64_t rows, int64_t V);

template <class T>
double cross_entropy(T* dlogits, const T* logits, const int32_t* targets, int64_t rows,
                     int64_t V, double grad_scale);

// Vocabulary-parallel cross-entropy (tensor parallelism): each rank holds the logits of the ids
// in `vocab` in columns [0, vocab.end − vocab.begin) of rows of stride ld (columns past them are
// padding, ignored). Each rank computes per-row statistics of its columns; every rank's are
// gathered; each rank then finishes the loss and its columns' gradient:
//   cross_entropy_partials → all-gather [ranks, rows, kCrossEntropyStats] → cross_entropy_from_partials
// With one rank holding every id this is cross_entropy above (which is built from them).
inline constexpr int64_t kCrossEntropyStats = 3;  // per row: max, Σ exp(z − max), target's logit

// stats [rows, 3]: the max over this rank's columns (−inf without columns), Σ exp(z − max), and
// the target's logit where this rank holds the target (else 0). Targets: checked by the caller.
template <class T>
void cross_entropy_partials(T* stats, const T* logits, int64_t ld, VocabRange vocab, const int32_t* targets,
                            int64_t rows);

// all [ranks, rows, 3]: every rank's stats, rank order. Returns Σ over counted rows of
// (logsumexp − logit[target]) over the whole vocabulary, in double. dlogits [rows, ld] (may alias
// logits, or null): (softmax − onehot(target)) · grad_scale on this rank's columns, zero on
// padding columns and on rows whose target is kIgnoreIndex.
template <class T>
double cross_entropy_from_partials(T* dlogits, const T* logits, int64_t ld, VocabRange vocab, const T* all,
                                   int64_t ranks, const int32_t* targets, int64_t rows, double grad_scale);

}  // namespace hymba::cpu
