// Token embedding with the meta-token prepend (HYMBA_SPEC §2.1): for each batch row,
// x[b, 0:M] = meta and x[b, M+t] = table[ids[b, t]].
#pragma once

#include <cstdint>

#include "cpu/vocab_range.h"

namespace hymba::cpu {

// ids [B, T]; table [V, H]; meta [M, H]; x [B, M+T, H].
// An id outside [0, V) is an error naming its offset in ids (check_token_ids, which the CUDA
// path calls on the host before it uploads the ids).
// Vocabulary-parallel (tensor parallelism): table holds only the rows of `vocab` (row id −
// vocab.begin); the other ids give zero rows, and a null meta gives zero meta rows, so the sum of
// every rank's x (an all-reduce) is the embedding.
void check_token_ids(const int32_t* ids, int64_t B, int64_t Tlen, int64_t V);
template <class T>
void embedding_forward(T* x, const int32_t* ids, const T* table, const T* meta, int64_t B,
                       int64_t Tlen, int64_t M, int64_t H, int64_t V, VocabRange vocab = {});

// dtable[ids[b,t]] += dx[b, M+t] except where ids == pad_id (nn.Embedding's padding_idx: the
// lookup never trains that row); dmeta += Σ_b dx[b, 0:M]. With `vocab`, only the ids it holds.
template <class T>
void embedding_backward(T* dtable, T* dmeta, const T* dx, const int32_t* ids, int64_t B,
                        int64_t Tlen, int64_t M, int64_t H, int64_t pad_id, VocabRange vocab = {});

}  // namespace hymba::cpu
