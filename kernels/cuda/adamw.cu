// The optimizer's kernels: the elementwise AdamW update (memory-bound: four fp32 streams read,
// three written, one thread per element) and a deterministic double-precision sum of squares.
#include "cuda/adamw.h"

#include <algorithm>
#include <cstdint>

#include "core/cuda_check.h"
#include "core/error.h"
#include "cuda/alignment.h"

namespace hymba::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Grid caps: enough resident threads to keep an H100's memory busy (132 SMs × 2048 threads is
// about 1100 blocks of 256); larger inputs are covered by grid-stride loops.
constexpr int64_t kMaxUpdateBlocks = 4096;
// The sum's block count depends on n alone, never on the device, so its summation order (and
// so its bits) is the same on every GPU.
constexpr int64_t kMaxSumBlocks = 1024;

// AdamWStep rounded to float once, with 1 − beta taken in double first as the CPU does.
struct UpdateConstants {
  float lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, bias1, bias2, decay, grad_factor;
};

// One element: the same order of operations as AdamW<T>::step. Returns the new parameter.
__device__ __forceinline__ float update_one(float p, float grad, float& m, float& v, const UpdateConstants& c) {
  const float g = grad * c.grad_factor;
  m = c.beta1 * m + c.one_minus_beta1 * g;
  v = c.beta2 * v + c.one_minus_beta2 * g * g;
  const float update = (m / c.bias1) / (sqrtf(v / c.bias2) + c.eps);
  return p * c.decay - c.lr * update;
}

// params, grads, m, v [n]; params_bf16 [n]: the updated params rounded, or null. With
// kVector (every buffer 16-byte aligned, params_bf16 8-byte aligned) a thread moves four
// elements per load and store, which keeps more bytes in flight than one; the last n % 4
// elements go one by one.
template <bool kVector>
__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, __nv_bfloat16* params_bf16,
                             int64_t n, UpdateConstants c) {
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  const int64_t first = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t vectors = kVector ? n / 4 : 0;
  for (int64_t q = first; q < vectors; q += stride) {
    float4 p = reinterpret_cast<float4*>(params)[q];
    const float4 g = reinterpret_cast<const float4*>(grads)[q];
    float4 mq = reinterpret_cast<float4*>(m)[q], vq = reinterpret_cast<float4*>(v)[q];
    p.x = update_one(p.x, g.x, mq.x, vq.x, c);
    p.y = update_one(p.y, g.y, mq.y, vq.y, c);
    p.z = update_one(p.z, g.z, mq.z, vq.z, c);
    p.w = update_one(p.w, g.w, mq.w, vq.w, c);
    reinterpret_cast<float4*>(params)[q] = p;
    reinterpret_cast<float4*>(m)[q] = mq;
    reinterpret_cast<float4*>(v)[q] = vq;
    if (params_bf16) {
      __nv_bfloat162* out = reinterpret_cast<__nv_bfloat162*>(params_bf16) + 2 * q;
      out[0] = __floats2bfloat162_rn(p.x, p.y);
      out[1] = __floats2bfloat162_rn(p.z, p.w);
    }
  }
  for (int64_t i = 4 * vectors + first; i < n; i += stride) {
    const float p = update_one(params[i], grads[i], m[i], v[i], c);
    params[i] = p;
    if (params_bf16) params_bf16[i] = __float2bfloat16_rn(p);
  }
}

// Sum of v over the block in a fixed order (a shuffle tree within each warp, then the warps in
// turn); the result is valid in thread 0 only. Called once per kernel.
__device__ double block_sum(double v) {
  __shared__ double warp_sums[kWarps];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  double total = 0;
  if (threadIdx.x == 0) {
    for (int w = 0; w < kWarps; ++w) total += warp_sums[w];
  }
  return total;
}

// x [n] → partial[blockIdx.x] = Σ x² over the elements block b owns (b, b + gridDim.x, ... in
// units of kThreads). Four independent accumulators keep four loads in flight per thread.
__global__ void sum_squares_partial_kernel(const float* x, int64_t n, double* partial) {
  const int64_t stride = int64_t(gridDim.x) * kThreads;
  int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const double x0 = x[i], x1 = x[i + stride], x2 = x[i + 2 * stride], x3 = x[i + 3 * stride];
    a0 += x0 * x0;  // a float's square is exact in double
    a1 += x1 * x1;
    a2 += x2 * x2;
    a3 += x3 * x3;
  }
  for (; i < n; i += stride) {
    const double xi = x[i];
    a0 += xi * xi;
  }
  const double total = block_sum((a0 + a1) + (a2 + a3));
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

// partial [blocks] → *out = their sum, in a fixed order; one block.
__global__ void sum_partials_kernel(const double* partial, int blocks, double* out) {
  double acc = 0;
  for (int b = threadIdx.x; b < blocks; b += kThreads) acc += partial[b];
  const double total = block_sum(acc);
  if (threadIdx.x == 0) *out = total;
}

int64_t sum_blocks(int64_t n) { return std::min((n + kThreads - 1) / kThreads, kMaxSumBlocks); }

}  // namespace

void adamw_update(float* params, const float* grads, float* m, float* v, int64_t n,
                  const AdamWStep& step, cudaStream_t stream, __nv_bfloat16* params_bf16) {
  if (n < 0) fail("adamw_update: n = ", n, " is negative");
  // bias corrections of 0 mean step t = 0: the caller forgot to count the step.
  if (!(step.bias1 > 0) || !(step.bias2 > 0)) {
    fail("adamw_update: bias corrections ", step.bias1, ", ", step.bias2, " must be positive (step t >= 1)");
  }
  if (n == 0) return;
  const UpdateConstants c{float(step.lr),    float(step.beta1), float(1.0 - step.beta1),
                          float(step.beta2), float(1.0 - step.beta2), float(step.eps),
                          float(step.bias1), float(step.bias2), float(step.decay),
                          float(step.grad_factor)};
  const int64_t blocks = std::min((n + kThreads - 1) / kThreads, kMaxUpdateBlocks);
  const bool vector = aligned(params, 16) && aligned(grads, 16) && aligned(m, 16) && aligned(v, 16) &&
                      aligned(params_bf16, 8);
  if (vector) adamw_kernel<true><<<unsigned(blocks), kThreads, 0, stream>>>(params, grads, m, v, params_bf16, n, c);
  else adamw_kernel<false><<<unsigned(blocks), kThreads, 0, stream>>>(params, grads, m, v, params_bf16, n, c);
  HYMBA_CUDA_CHECK_LAUNCH();
}

int64_t sum_of_squares_workspace(int64_t n) {
  if (n <= 0) return 0;
  return 2 * (sum_blocks(n) + 1);  // doubles: the partials, then the total
}

double sum_of_squares(const float* x, int64_t n, float* workspace, cudaStream_t stream) {
  if (n < 0) fail("sum_of_squares: n = ", n, " is negative");
  if (n == 0) {
    HYMBA_CUDA_CHECK(cudaStreamSynchronize(stream));  // the same contract as for n > 0
    return 0.0;
  }
  if (workspace == nullptr || !aligned(workspace, alignof(double))) {
    fail("sum_of_squares: the workspace ", static_cast<const void*>(workspace),
         " is not 8-byte aligned (it holds doubles)");
  }
  const int64_t blocks = sum_blocks(n);
  double* partial = reinterpret_cast<double*>(workspace);  // [blocks], then the total
  sum_squares_partial_kernel<<<unsigned(blocks), kThreads, 0, stream>>>(x, n, partial);
  HYMBA_CUDA_CHECK_LAUNCH();
  sum_partials_kernel<<<1, kThreads, 0, stream>>>(partial, int(blocks), partial + blocks);
  HYMBA_CUDA_CHECK_LAUNCH();
  double total = 0;
  HYMBA_CUDA_CHECK(cudaMemcpyAsync(&total, partial + blocks, sizeof(double), cudaMemcpyDeviceToHost, stream));
  HYMBA_CUDA_CHECK(cudaStreamSynchronize(stream));
  return total;
}

}  // namespace hymba::cuda
