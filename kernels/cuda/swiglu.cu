// SwiGLU, elementwise. Memory bound, so values move in 16-byte packs (4 floats or 8 bf16) when
// every pointer allows it; a grid-stride loop covers the packs and then the < K leftover values.
#include "cuda/swiglu.h"

#include <algorithm>
#include <cstdint>

#include "core/cuda_check.h"
#include "cuda/alignment.h"
#include "cuda/dtype.cuh"

namespace hymba::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 4096;  // enough to fill an H100; larger n loops in the grid

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

template <class T, int K>
__global__ void swiglu_forward_kernel(T* a, const T* g, const T* up, int64_t n) {
  using P = Pack<T, K>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t packs = n / K;
  for (int64_t i = first; i < packs; i += stride) {
    const P gv = reinterpret_cast<const P*>(g)[i], uv = reinterpret_cast<const P*>(up)[i];
    P av;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const float x = to_float(gv.v[k]);
      av.v[k] = from_float<T>(x * sigmoid(x) * to_float(uv.v[k]));
    }
    reinterpret_cast<P*>(a)[i] = av;
  }
  for (int64_t i = packs * K + first; i < n; i += stride) {
    const float x = to_float(g[i]);
    a[i] = from_float<T>(x * sigmoid(x) * to_float(up[i]));
  }
}

// dg = da·up·σ(g)(1 + g(1 − σ(g))), dup = da·g·σ(g).
__device__ __forceinline__ void swiglu_grad(float da, float g, float up, float& dg, float& dup) {
  const float s = sigmoid(g);
  dg = da * up * (s * (1.0f + g * (1.0f - s)));
  dup = da * (g * s);
}

template <class T, int K>
__global__ void swiglu_backward_kernel(T* dg, T* dup, const T* da, const T* g, const T* up, int64_t n) {
  using P = Pack<T, K>;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t packs = n / K;
  for (int64_t i = first; i < packs; i += stride) {
    const P dav = reinterpret_cast<const P*>(da)[i], gv = reinterpret_cast<const P*>(g)[i],
            uv = reinterpret_cast<const P*>(up)[i];
    P dgv, duv;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      float dgk, duk;
      swiglu_grad(to_float(dav.v[k]), to_float(gv.v[k]), to_float(uv.v[k]), dgk, duk);
      dgv.v[k] = from_float<T>(dgk);
      duv.v[k] = from_float<T>(duk);
    }
    reinterpret_cast<P*>(dg)[i] = dgv;
    reinterpret_cast<P*>(dup)[i] = duv;
  }
  for (int64_t i = packs * K + first; i < n; i += stride) {
    float dgk, duk;
    swiglu_grad(to_float(da[i]), to_float(g[i]), to_float(up[i]), dgk, duk);
    dg[i] = from_float<T>(dgk);
    dup[i] = from_float<T>(duk);
  }
}

// Blocks for n values moved k at a time (at least one: the leftovers need a thread).
unsigned blocks_for(int64_t n, int k) {
  const int64_t threads_needed = std::max<int64_t>(n / k, 1);
  return unsigned(std::min((threads_needed + kThreads - 1) / kThreads, kMaxBlocks));
}

}  // namespace

template <class T>
void swiglu_forward(T* a, const T* g, const T* up, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int K = 16 / sizeof(T);
  if (aligned(a, 16) && aligned(g, 16) && aligned(up, 16)) {
    swiglu_forward_kernel<T, K><<<blocks_for(n, K), kThreads, 0, stream>>>(a, g, up, n);
  } else {
    swiglu_forward_kernel<T, 1><<<blocks_for(n, 1), kThreads, 0, stream>>>(a, g, up, n);
  }
  HYMBA_CUDA_CHECK_LAUNCH();
}

template <class T>
void swiglu_backward(T* dg, T* dup, const T* da, const T* g, const T* up, int64_t n,
                     cudaStream_t stream) {
  if (n == 0) return;
  constexpr int K = 16 / sizeof(T);
  if (aligned(dg, 16) && aligned(dup, 16) && aligned(da, 16) && aligned(g, 16) && aligned(up, 16)) {
    swiglu_backward_kernel<T, K><<<blocks_for(n, K), kThreads, 0, stream>>>(dg, dup, da, g, up, n);
  } else {
    swiglu_backward_kernel<T, 1><<<blocks_for(n, 1), kThreads, 0, stream>>>(dg, dup, da, g, up, n);
  }
  HYMBA_CUDA_CHECK_LAUNCH();
}

template void swiglu_forward<float>(float*, const float*, const float*, int64_t, cudaStream_t);
template void swiglu_forward<bf16>(bf16*, const bf16*, const bf16*, int64_t, cudaStream_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*,
                                     int64_t, cudaStream_t);
template void swiglu_backward<bf16>(bf16*, bf16*, const bf16*, const bf16*, const bf16*, int64_t,
                                    cudaStream_t);

}  // namespace hymba::cuda
