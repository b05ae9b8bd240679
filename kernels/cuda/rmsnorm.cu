// fp32 RMSNorm kernels, the simple correct versions: one block per row, a block-wide reduction
// of the row's statistics. The fast fused kernels (residual add, bf16, vectorised) come with the
// end-to-end speed work; these are what the GPU model is first checked with.
#include "cuda/rmsnorm.h"

#include <algorithm>

#include "core/cuda_check.h"

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

__global__ void forward_kernel(float* y, int64_t ldy, float* rstd, const float* x, int64_t ldx,
                               const float* w, int64_t dim, float eps) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * ldx;  // [dim]
  float* yr = y + row * ldy;        // [dim]
  float ss = 0;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) ss += xr[i] * xr[i];
  const float rs = rsqrtf(block_sum(ss) / float(dim) + eps);
  if (threadIdx.x == 0) rstd[row] = rs;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) yr[i] = w[i] * (xr[i] * rs);
}

// Block b handles rows b, b + gridDim.x, ...; its dw partial sums go to partial[b, :].
__global__ void backward_kernel(float* dx, int64_t lddx, float* partial, const float* dy,
                                int64_t lddy, const float* x, int64_t ldx, const float* w,
                                const float* rstd, int64_t rows, int64_t dim, bool accumulate_dx) {
  extern __shared__ float dw_acc[];  // [dim]: column i is only ever touched by thread i % kThreads
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) dw_acc[i] = 0;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float* xr = x + row * ldx;
    const float* dyr = dy + row * lddy;
    float* dxr = dx + row * lddx;
    const float rs = rstd[row];
    float dot = 0;  // Σ (w⊙dy) ⊙ x̂ over the row
    for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
      const float xhat = xr[i] * rs;
      dot += w[i] * dyr[i] * xhat;
      dw_acc[i] += dyr[i] * xhat;
    }
    const float mean = block_sum(dot) / float(dim);
    for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
      const float g = rs * (w[i] * dyr[i] - xr[i] * rs * mean);
      dxr[i] = accumulate_dx ? dxr[i] + g : g;
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

void rmsnorm_forward(float* y, int64_t ldy, float* rstd, const float* x, int64_t ldx,
                     const float* w, int64_t rows, int64_t dim, double eps, cudaStream_t stream) {
  if (rows == 0) return;
  forward_kernel<<<unsigned(rows), kThreads, 0, stream>>>(y, ldy, rstd, x, ldx, w, dim, float(eps));
  HYMBA_CUDA_CHECK_LAUNCH();
}

int64_t rmsnorm_backward_workspace(int64_t rows, int64_t dim) { return backward_blocks(rows) * dim; }

void rmsnorm_backward(float* dx, int64_t lddx, float* dw, const float* dy, int64_t lddy,
                      const float* x, int64_t ldx, const float* w, const float* rstd, int64_t rows,
                      int64_t dim, bool accumulate_dx, float* workspace, cudaStream_t stream) {
  if (rows == 0) return;
  if (dim > kMaxDim) fail("rmsnorm_backward: dim ", dim, " is above the supported ", kMaxDim);
  const int blocks = backward_blocks(rows);
  const size_t smem = size_t(dim) * sizeof(float);
  if (smem > 48 * 1024) {
    HYMBA_CUDA_CHECK(cudaFuncSetAttribute(backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          int(smem)));
  }
  backward_kernel<<<blocks, kThreads, smem, stream>>>(dx, lddx, workspace, dy, lddy, x, ldx, w, rstd,
                                                      rows, dim, accumulate_dx);
  HYMBA_CUDA_CHECK_LAUNCH();
  reduce_partials_kernel<<<unsigned((dim + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      dw, workspace, blocks, dim);
  HYMBA_CUDA_CHECK_LAUNCH();
}

}  // namespace hymba::cuda
