// Fused softmax + cross-entropy on the GPU: the contract of kernels/cpu/cross_entropy.h
// (HYMBA_SPEC §2.9) on device pointers, fp32 arithmetic, logits and dlogits of the activation type T.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cpu/cross_entropy.h"

namespace hymba::cuda {

inline constexpr int32_t kIgnoreIndex = cpu::kIgnoreIndex;  // −100: a row that adds no loss
inline constexpr int64_t kCrossEntropyStats = cpu::kCrossEntropyStats;  // per row: max, Σ exp(z − max), target's logit

// Floats of scratch cross_entropy needs: one loss per row, summed afterwards in row order.
int64_t cross_entropy_workspace(int64_t rows);

// logits [rows, V]; targets [rows] (device; the caller has checked each is kIgnoreIndex or in
// [0, V)); dlogits [rows, V] (=) or null, may alias logits: it receives
// (softmax − onehot(target)) · grad_scale, and zero on rows whose target is kIgnoreIndex.
// Returns Σ over counted rows of (logsumexp − logit[target]), summed in double in row order.
// Not asynchronous: it waits for `stream` to return the loss. workspace: the size above.
template <class T>
double cross_entropy(T* dlogits, const T* logits, const int32_t* targets, int64_t rows, int64_t V,
                     double grad_scale, float* workspace, cudaStream_t stream);

// Vocabulary-parallel cross-entropy (tensor parallelism), the contract of the CPU functions of the
// same names: this rank holds the logits of the ids in `vocab` (a finite range, at most ld ids) in
// columns [0, vocab.end − vocab.begin) of rows of stride ld; columns past them are padding.
//   cross_entropy_partials → all-gather of stats [ranks, rows, 3] → cross_entropy_from_partials
// targets [rows] are device memory, checked by the caller against the whole vocabulary.

// stats [rows, 3] (device): per row the max over this rank's columns (−inf without columns),
// Σ exp(z − max), and the target's logit where this rank holds the target (else 0). Rows whose
// target is kIgnoreIndex get their max and sum too (no one reads them). Asynchronous.
template <class T>
void cross_entropy_partials(float* stats, const T* logits, int64_t ld, cpu::VocabRange vocab, const int32_t* targets,
                            int64_t rows, cudaStream_t stream);

// all [ranks, rows, 3] (device): every rank's stats, rank order. Returns Σ over counted rows of
// (logsumexp − logit[target]) over the whole vocabulary, summed in double in row order, and
// waits for `stream` (workspace: cross_entropy_workspace(rows)). dlogits [rows, ld] (=, may alias
// logits, or null): (softmax − onehot(target)) · grad_scale on this rank's columns, zero on the
// padding columns and on rows whose target is kIgnoreIndex. With one rank holding every id, the
// loss and dlogits are cross_entropy's bits.
template <class T>
double cross_entropy_from_partials(T* dlogits, const T* logits, int64_t ld, cpu::VocabRange vocab, const float* all,
                                   int64_t ranks, const int32_t* targets, int64_t rows, double grad_scale,
                                   float* workspace, cudaStream_t stream);

}  // namespace hymba::cuda
