// SwiGLU gate of the MLP on the GPU: the contract of kernels/cpu/swiglu.h (HYMBA_SPEC §2.8) on
// device pointers, elementwise in fp32, asynchronous on `stream`.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstdint>

namespace hymba::cuda {

// g, up, a [n]: a = silu(g) ⊙ up (written).
template <class T>
void swiglu_forward(T* a, const T* g, const T* up, int64_t n, cudaStream_t stream);

// da, g, up, dg, dup [n]: dg = da ⊙ up ⊙ silu'(g), dup = da ⊙ silu(g) (both written).
template <class T>
void swiglu_backward(T* dg, T* dup, const T* da, const T* g, const T* up, int64_t n,
                     cudaStream_t stream);

}  // namespace hymba::cuda
