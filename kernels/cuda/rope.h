// Rotary position embedding on the GPU: the same contract as kernels/cpu/rope.h (rotate-half
// convention, position of sequence index s is s), on device pointers, asynchronous on `stream`.
// T is the activation type: float or __nv_bfloat16. inv_freq is float in both (the model keeps it
// in fp32). The angle s · inv_freq[i] and its cos/sin are taken in double, as the CPU reference
// does: at s = 4096 an fp32 angle is already off by up to 2.4e-4 rad. Each (s, i) is computed once
// per token and shared by all heads, so the double math costs little.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hymba::cuda {

// x [B, S, heads, hd] at token stride ldx (>= heads·hd); y [B, S, heads, hd] contiguous (=);
// inv_freq [hd/2]. hd must be even. y may be x itself when ldx = heads·hd.
template <class T>
void rope_forward(T* y, const T* x, int64_t ldx, const float* inv_freq, int64_t B, int64_t S,
                  int64_t heads, int64_t hd, cudaStream_t stream);

// The rotation's transpose: dx [B, S, heads, hd] at token stride lddx (>= heads·hd) (=);
// dy [B, S, heads, hd] contiguous; inv_freq [hd/2]. dx may be dy itself when lddx = heads·hd.
template <class T>
void rope_backward(T* dx, int64_t lddx, const T* dy, const float* inv_freq, int64_t B, int64_t S,
                   int64_t heads, int64_t hd, cudaStream_t stream);

}  // namespace hymba::cuda
