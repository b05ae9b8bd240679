// RMSNorm kernels, the simple correct versions: one block per row, a block-wide reduction of the
// row's statistics, fp32 arithmetic for float and bf16 activations alike. The fast fused kernels
// (residual add, vectorised) come with the end-to-end speed work; these are what the GPU model is
// first checked with.
#include "cuda/rmsnorm.h"

#include <algorithm>

#include "core/cuda_check.h"
#include "cuda/dtype.cuh"

namespace hymba::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Blocks of the backward pass: each owns a slice of the rows and keeps its dw partial sums in
// shared memory, so dim is bounded by the shared memory a block may use.
constexpr int kBackwardBlocks = 264;  // 2 per SM on an H100
constexpr int64_t kMaxDim = 12 * 1024;

// Sum of v over the block; every thread gets the result.
__device__ float block_sum(float v) {
  __shared__ float warp_sums[kWarps];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();  // warp_sums may still be read by an earlier call
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = 0;
  for (int w = 0; w < kWarps; ++w) total += warp_sums[w];
  return total;
}

template <class T>
__global__ void forward_kernel(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx,
                               const float* w, int64_t dim, float eps) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * ldx;  // [dim]
  T* yr = y + row * ldy;        // [dim]
  float ss = 0;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    const float v = to_float(xr[i]);
    ss += v * v;
  }
  const float rs = rsqrtf(block_sum(ss) / float(dim) + eps);
  if (threadIdx.x == 0) rstd[row] = rs;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    yr[i] = from_float<T>(w[i] * (to_float(xr[i]) * rs));
  }
}

// Block b handles rows b, b + gridDim.x, ...; its dw partial sums go to partial[b, :].
template <class T>
__global__ void backward_kernel(T* dx, int64_t lddx, float* partial, const T* dy, int64_t lddy,
                                const T* x, int64_t ldx, const float* w, const float* rstd,
                                int64_t rows, int64_t dim, bool accumulate_dx) {
  extern __shared__ float dw_acc[];  // [dim]: column i is only ever touched by thread i % kThreads
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) dw_acc[i] = 0;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* xr = x + row * ldx;     // [dim]
    const T* dyr = dy + row * lddy;  // [dim]
    T* dxr = dx + row * lddx;        // [dim]
    const float rs = rstd[row];
    float dot = 0;  // Σ (w⊙dy) ⊙ x̂ over the row
    for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
      const float xhat = to_float(xr[i]) * rs, g = to_float(dyr[i]);
      dot += w[i] * g * xhat;
      dw_acc[i] += g * xhat;
    }
    const float mean = block_sum(dot) / float(dim);
    for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
      const float g = rs * (w[i] * to_float(dyr[i]) - to_float(xr[i]) * rs * mean);
      dxr[i] = from_float<T>(accumulate_dx ? to_float(dxr[i]) + g : g);
    }
  }
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) partial[blockIdx.x * dim + i] = dw_acc[i];
}

// dw[i] += Σ_b partial[b, i], summed in block order (deterministic).
__global__ void reduce_partials_kernel(float* dw, const float* partial, int blocks, int64_t dim) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= dim) return;
  float s = 0;
  for (int b = 0; b < blocks; ++b) s += partial[b * dim + i];
  dw[i] += s;
}

int backward_blocks(int64_t rows) { return int(std::min<int64_t>(rows, kBackwardBlocks)); }

}  // namespace

template <class T>
void rmsnorm_forward(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx, const float* w,
                     int64_t rows, int64_t dim, double eps, cudaStream_t stream) {
  if (rows == 0) return;
  forward_kernel<T><<<unsigned(rows), kThreads, 0, stream>>>(y, ldy, rstd, x, ldx, w, dim, float(eps));
  HYMBA_CUDA_CHECK_LAUNCH();
}

int64_t rmsnorm_backward_workspace(int64_t rows, int64_t dim) { return backward_blocks(rows) * dim; }

template <class T>
void rmsnorm_backward(T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy, const T* x,
                      int64_t ldx, const float* w, const float* rstd, int64_t rows, int64_t dim,
                      bool accumulate_dx, float* workspace, cudaStream_t stream) {
  if (rows == 0) return;
  if (dim > kMaxDim) fail("rmsnorm_backward: dim ", dim, " is above the supported ", kMaxDim);
  const int blocks = backward_blocks(rows);
  const size_t smem = size_t(dim) * sizeof(float);
  if (smem > 48 * 1024) {
    HYMBA_CUDA_CHECK(cudaFuncSetAttribute(backward_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          int(smem)));
  }
  backward_kernel<T><<<blocks, kThreads, smem, stream>>>(dx, lddx, workspace, dy, lddy, x, ldx, w, rstd,
                                                         rows, dim, accumulate_dx);
  HYMBA_CUDA_CHECK_LAUNCH();
  reduce_partials_kernel<<<unsigned((dim + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      dw, workspace, blocks, dim);
  HYMBA_CUDA_CHECK_LAUNCH();
}

template void rmsnorm_forward<float>(float*, int64_t, float*, const float*, int64_t, const float*,
                                     int64_t, int64_t, double, cudaStream_t);
template void rmsnorm_forward<bf16>(bf16*, int64_t, float*, const bf16*, int64_t, const float*,
                                    int64_t, int64_t, double, cudaStream_t);
template void rmsnorm_backward<float>(float*, int64_t, float*, const float*, int64_t, const float*,
                                      int64_t, const float*, const float*, int64_t, int64_t, bool,
                                      float*, cudaStream_t);
template void rmsnorm_backward<bf16>(bf16*, int64_t, float*, const bf16*, int64_t, const bf16*,
                                     int64_t, const float*, const float*, int64_t, int64_t, bool,
                                     float*, cudaStream_t);

}  // namespace hymba::cuda
