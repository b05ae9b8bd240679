// Token embedding with the meta-token prepend on the GPU: the contract of kernels/cpu/embedding.h
// (HYMBA_SPEC §2.1) on device pointers, asynchronous on `stream`. x and dx are the activation type
// T; so is the table forward reads (the GEMMs' copy of the tied embedding: a bf16 copy gives the
// same x as the fp32 table, which is rounded to T once either way). The meta tokens and both
// gradients are float.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cpu/vocab_range.h"

namespace hymba::cuda {

// x [B, M+T, H] (=); ids [B, T] (device); table [V, H]; meta [M, H].
// x[b, 0:M] = meta, x[b, M+t] = table[ids[b, t]]. The caller has checked every id is in [0, V):
// the kernel does not (an id outside it reads outside the table).
// Vocabulary-parallel (tensor parallelism): table [vocab.end − vocab.begin, H] holds only the ids
// of `vocab` (row id − vocab.begin); other ids give zero rows, and a null meta gives zero meta
// rows, so the sum of every rank's x (an all-reduce) is the embedding. The default: every id.
template <class T>
void embedding_forward(T* x, const int32_t* ids, const T* table, const float* meta, int64_t B,
                       int64_t Tlen, int64_t M, int64_t H, cudaStream_t stream, cpu::VocabRange vocab = {});

// int32 elements of scratch embedding_backward needs: the plan of which dx rows add into which
// table row (at most 4·B·T values).
int64_t embedding_backward_workspace(int64_t B, int64_t Tlen);

// dtable [V, H] (+=): dtable[ids[b,t]] += dx[b, M+t] except where ids == pad_id (never trained,
// as nn.Embedding's padding_idx); dmeta [M, H] (+=): dmeta += Σ_b dx[b, 0:M]; dx [B, M+T, H].
// ids_host [B, T] is on the HOST: the launcher groups the positions by id there (the host already
// holds the batch), so each table row is summed by one block in position order: reproducible and
// without atomics. workspace: device int32, the size above. The plan is copied to it with
// cudaMemcpyAsync and freed by a host function queued on `stream` after the copy, so nothing here
// waits for the GPU (ids_host itself is read only during the call).
// With `vocab`, dtable holds only its ids' rows (row id − vocab.begin), and the other ids train
// nothing here; dmeta is added to as always.
template <class T>
void embedding_backward(float* dtable, float* dmeta, const T* dx, const int32_t* ids_host, int64_t B,
                        int64_t Tlen, int64_t M, int64_t H, int64_t pad_id, int32_t* workspace,
                        cudaStream_t stream, cpu::VocabRange vocab = {});

}  // namespace hymba::cuda
