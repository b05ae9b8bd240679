// Fused softmax + cross-entropy: one block per row. The first pass over the row keeps a running
// (max, Σ exp(z − max)) per thread (online softmax), so the logits are read once for the
// logsumexp and once more to write the gradient, which may overwrite them in place.
#include "cuda/cross_entropy.h"

#include <climits>
#include <cmath>
#include <vector>

#include "core/cuda_check.h"
#include "cuda/dtype.cuh"

namespace hymba::cuda {

namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;

// (m, s) ← the pair for the union of both sets: s = Σ exp(z − m) with m the larger maximum.
// An empty set is (−inf, 0). Symmetric in its two arguments, so every lane of a butterfly agrees.
__device__ __forceinline__ void combine(float& m, float& s, float m2, float s2) {
  const float mx = fmaxf(m, m2);
  if (mx == -INFINITY) return;  // both empty: exp(−inf − −inf) would be NaN
  s = s * expf(m - mx) + s2 * expf(m2 - mx);
  m = mx;
}

// Combines (m, s) over the block, warps in a fixed order; every thread gets the result.
__device__ void block_max_sum(float& m, float& s) {
  __shared__ float warp_m[kWarps], warp_s[kWarps];
  for (int o = 16; o > 0; o >>= 1) {
    combine(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_m[warp] = m, warp_s[warp] = s;
  __syncthreads();
  m = -INFINITY, s = 0;
  for (int w = 0; w < kWarps; ++w) combine(m, s, warp_m[w], warp_s[w]);
}

// Block `row`: loss[row] = lse − z[target] (0 for an ignored row); dz (may be z, or null) =
// (softmax − onehot) · grad_scale.
template <class T>
__global__ void cross_entropy_kernel(T* dlogits, const T* logits, const int32_t* targets, int64_t V,
                                     float grad_scale, float* loss) {
  const int64_t row = blockIdx.x;
  const int32_t target = targets[row];
  const T* z = logits + row * V;                  // [V]
  T* dz = dlogits ? dlogits + row * V : nullptr;  // [V]
  if (target == kIgnoreIndex) {
    if (threadIdx.x == 0) loss[row] = 0;
    if (dz) {
      for (int64_t v = threadIdx.x; v < V; v += kThreads) dz[v] = from_float<T>(0.0f);
    }
    return;
  }
  // Read before the block reduction's barrier, i.e. before any thread overwrites the row.
  const float z_target = to_float(z[target]);
  float m = -INFINITY, s = 0;
  for (int64_t v = threadIdx.x; v < V; v += kThreads) {
    const float zv = to_float(z[v]);
    if (zv > m) {
      s = s * expf(m - zv) + 1.0f;
      m = zv;
    } else {
      s += expf(zv - m);
    }
  }
  block_max_sum(m, s);
  const float lse = m + logf(s);
  if (threadIdx.x == 0) loss[row] = lse - z_target;
  if (dz) {
    // Each element is read and then written by the same thread, so aliasing z is safe.
    for (int64_t v = threadIdx.x; v < V; v += kThreads) {
      const float p = expf(to_float(z[v]) - lse);
      dz[v] = from_float<T>((v == target ? p - 1.0f : p) * grad_scale);
    }
  }
}

}  // namespace

int64_t cross_entropy_workspace(int64_t rows) { return rows; }

template <class T>
double cross_entropy(T* dlogits, const T* logits, const int32_t* targets, int64_t rows, int64_t V,
                     double grad_scale, float* workspace, cudaStream_t stream) {
  if (rows == 0) return 0;
  if (V < 1) fail("cross_entropy: vocabulary size ", V, " must be at least 1");
  if (rows > INT_MAX) fail("cross_entropy: ", rows, " rows are above the supported ", INT_MAX);
  cross_entropy_kernel<<<unsigned(rows), kThreads, 0, stream>>>(dlogits, logits, targets, V,
                                                               float(grad_scale), workspace);
  HYMBA_CUDA_CHECK_LAUNCH();
  // The per-row losses come back and are summed in double in row order: the same bits every run.
  std::vector<float> loss(static_cast<size_t>(rows));  // [rows]
  HYMBA_CUDA_CHECK(cudaMemcpyAsync(loss.data(), workspace, loss.size() * sizeof(float),
                                   cudaMemcpyDeviceToHost, stream));
  HYMBA_CUDA_CHECK(cudaStreamSynchronize(stream));
  double total = 0;
  for (const float l : loss) total += l;
  return total;
}

template double cross_entropy<float>(float*, const float*, const int32_t*, int64_t, int64_t, double,
                                     float*, cudaStream_t);
template double cross_entropy<bf16>(bf16*, const bf16*, const int32_t*, int64_t, int64_t, double,
                                    float*, cudaStream_t);

}  // namespace hymba::cuda
