// Fused softmax + cross-entropy on the GPU: the contract of kernels/cpu/cross_entropy.h
// (HYMBA_SPEC §2.9) on device pointers, fp32 arithmetic, logits and dlogits of the activation type T.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cpu/cross_entropy.h"

namespace hymba::cuda {

inline constexpr int32_t kIgnoreIndex = cpu::kIgnoreIndex;  // −100: a row that adds no loss

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

}  // namespace hymba::cuda
