// Element types of the CUDA kernels. Activations are `T`: float (the fp32 path, checked against
// the CPU reference) or __nv_bfloat16 (mixed precision). Arithmetic is always fp32: a kernel loads
// with to_float and stores with from_float. Parameters, their gradients and statistics (rstd, lse)
// stay float in both paths.
#pragma once

#include <cuda_bf16.h>

namespace hymba::cuda {

using bf16 = __nv_bfloat16;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(bf16 v) { return __bfloat162float(v); }

template <class T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) { return v; }
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float v) { return __float2bfloat16_rn(v); }

// K values of T moved as one aligned load or store (memory-bound kernels use 16-byte packs: 4
// floats or 8 bf16).
template <class T, int K>
struct alignas(sizeof(T) * K) Pack {
  T v[K];
};

}  // namespace hymba::cuda
