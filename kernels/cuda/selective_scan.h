// Mamba-1 selective scan on the GPU: the contract of kernels/cpu/selective_scan.h (initial state,
// final state and document resets included) on device pointers, asynchronous on `stream`. T is the
// activation type (float or __nv_bfloat16); dt_bias, A_log, D, the states and their gradients are
// float. All arithmetic is fp32; each T output is rounded once. N (the state size) is 0..32.
// The .cu says how the kernels work; docs/PERF.md has their speed.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

#include "cpu/selective_scan.h"

namespace hymba::cuda {

using cpu::ScanShape;
template <class T>
using ScanInputs = cpu::ScanInputs<T, float>;
template <class T>
using ScanGrads = cpu::ScanGrads<T, float>;

// Floats of the states the forward can save for the backward (the state entering every chunk of
// tokens, so the backward recomputes the rest instead of running the forward again).
int64_t selective_scan_checkpoint_floats(const ScanShape& s);

// out [B, S, E] contiguous (=). hT [B, E, N] (=) the final state unless null. checkpoints
// (selective_scan_checkpoint_floats(s) floats, =) unless null: pass them to the backward.
template <class T>
void selective_scan_forward(T* out, float* hT, float* checkpoints, const ScanInputs<T>& in,
                            const ScanShape& s, cudaStream_t stream);

// Floats of scratch selective_scan_backward needs (partial sums; the checkpoints too when the
// backward has to compute them itself).
int64_t selective_scan_backward_workspace(const ScanShape& s);

// The gradients as in cpu::selective_scan_backward. dout [B, S, E] contiguous; dhT [B, E, N] or
// null. checkpoints: the forward's (same inputs), or null to recompute them. Deterministic: no
// float atomics, same inputs give the same bits. The outputs must not overlap the inputs.
template <class T>
void selective_scan_backward(const ScanGrads<T>& grads, const T* dout, const float* dhT,
                             const ScanInputs<T>& in, const float* checkpoints,
                             const ScanShape& s, float* workspace, cudaStream_t stream);

}  // namespace hymba::cuda
