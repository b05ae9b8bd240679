// The optimizer's kernels on the GPU: the AdamW update of src/optim/adamw.h (PyTorch's decoupled
// weight decay, the clipping factor applied to the gradient inside the update) and the sum of
// squares behind the global gradient norm. Master weights, gradients and both moments are fp32
// in one flat buffer each (model/param_layout.h); these act on a tensor, or on a run of tensors,
// given by its offset into those buffers. The optimizer class that walks the layout lives elsewhere.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hymba::cuda {

// One update's constants, computed by the caller in double exactly as AdamW<T>::step does; the
// launcher rounds each to float once.
struct AdamWStep {
  double lr = 0;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double bias1 = 1;        // 1 − beta1^t, t = the step being taken (1 for the first)
  double bias2 = 1;        // 1 − beta2^t
  double decay = 1;        // 1 − lr·weight_decay for a decayed tensor, 1 for an exempt one
  double grad_factor = 1;  // the clipping factor: the update uses grads · grad_factor
};

// In place over n elements, in the CPU's order of operations, in fp32:
//   g = grads·grad_factor;  m = beta1·m + (1 − beta1)·g;  v = beta2·v + (1 − beta2)·g·g
//   p = p·decay − lr · (m / bias1) / (sqrt(v / bias2) + eps)
// params, m, v [n] read and written; grads [n] read. One call per tensor, or per run of
// consecutive tensors with the same decay: the zero padding between them stays zero (g = m = v
// = 0 gives an update of 0 / eps = 0). n = 0 does nothing. Elementwise, so deterministic.
// params_bf16 [n], if not null, receives the updated params rounded to bf16 (round to nearest
// even): the GEMMs' copy of the weights, written in the same pass instead of a second one.
void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                  const AdamWStep& step, cudaStream_t stream, __nv_bfloat16* params_bf16 = nullptr);

// Floats of scratch sum_of_squares needs for n elements (0 when n = 0): per-block partial sums
// and the total, kept as doubles (two floats each). The workspace must be 8-byte aligned (any
// cudaMalloc'd pointer is).
int64_t sum_of_squares_workspace(int64_t n);

// Σ x² over x [n], each square and every sum in double: per-block partial sums, then one block
// adds the partials in a fixed order, so the same input gives the same bits on every run (the
// number of blocks depends on n alone, not on the device). Waits for `stream` and returns the
// total to the host (it also stays in the workspace as its last double). The global gradient
// norm is sqrt(sum_of_squares(grads, layout.storage, ...)): the zero padding adds nothing.
double sum_of_squares(const float* x, int64_t n, float* workspace, cudaStream_t stream);

}  // namespace hymba::cuda
