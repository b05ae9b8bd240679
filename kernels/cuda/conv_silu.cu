// Causal depthwise conv + SiLU kernels, the simple correct versions. A thread owns one channel e
// of one block of kTile consecutive tokens of one sequence and walks them in order, keeping the
// K-token window of x (and, backward, of dpre) in registers, so each element is loaded about once.
// Consecutive threads take consecutive channels: every load and store of a warp is contiguous.
// The kernels are templated on K so the windows are register arrays.
#include "cuda/conv_silu.h"

#include <climits>
#include <type_traits>

#include "core/cuda_check.h"
#include "cuda/dtype.cuh"

namespace hymba::cuda {

namespace {

constexpr int kThreads = 128;  // channels per block
constexpr int kTile = 16;      // tokens per thread (the header's 16): short, so many threads keep loads in flight
constexpr int kMaxK = 8;

__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

// d silu / dv = σ(v) · (1 + v · (1 − σ(v))), as in kernels/cpu/activations.h.
__device__ __forceinline__ float silu_grad(float v) {
  const float s = sigmoid(v);
  return s * (1.0f + v * (1.0f - s));
}

// Grid: x = b · tiles + tile (the token block), y = block of kThreads channels.
template <int K, class T>
__global__ void conv_forward_kernel(T* __restrict__ u, T* __restrict__ pre, const T* __restrict__ x,
                               int64_t ldx, const float* __restrict__ w,
                               const float* __restrict__ bias, int64_t S, int64_t E, int tiles) {
  const int64_t e = int64_t(blockIdx.y) * kThreads + threadIdx.x;
  if (e >= E) return;
  const int64_t b = blockIdx.x / tiles;
  const int64_t t0 = int64_t(blockIdx.x % tiles) * kTile;
  const int64_t t1 = t0 + kTile < S ? t0 + kTile : S;
  const T* xe = x + b * S * ldx + e;  // channel e of sequence b: token t at xe[t · ldx]
  const int64_t out0 = b * S * E + e;  // channel e of sequence b in u and pre: token t at + t · E

  float wk[K];  // w[e, :]
#pragma unroll
  for (int k = 0; k < K; ++k) wk[k] = w[e * K + k];
  const float be = bias[e];
  // win[k] = x at token t − (K−1) + k for the current t; the zero padding before token 0.
  float win[K];
#pragma unroll
  for (int k = 0; k < K - 1; ++k) {
    const int64_t t = t0 - (K - 1) + k;
    win[k] = t >= 0 ? to_float(xe[t * ldx]) : 0.0f;
  }
  for (int64_t t = t0; t < t1; ++t) {
    win[K - 1] = to_float(xe[t * ldx]);
    float p = be;  // bias first, then the taps in order, as the CPU reference sums
#pragma unroll
    for (int k = 0; k < K; ++k) p += wk[k] * win[k];
    pre[out0 + t * E] = from_float<T>(p);
    u[out0 + t * E] = from_float<T>(p * sigmoid(p));
#pragma unroll
    for (int k = 0; k < K - 1; ++k) win[k] = win[k + 1];
  }
}

// dx[s] = Σ_k w[:, k] · dpre[s + (K−1) − k] (token s is tap k of output s + (K−1) − k), and this
// block of tokens' share of dw[:, k] = Σ_t dpre[t] · x[t − (K−1) + k] and of dbias = Σ_t dpre[t],
// written to partial[blockIdx.x, :, e]. dpre = du · silu'(pre) is recomputed where needed
// (K − 1 extra tokens per block) rather than stored.
template <int K, class T>
__global__ void conv_backward_kernel(T* __restrict__ dx, int64_t lddx, float* __restrict__ partial,
                                const T* __restrict__ du, const T* __restrict__ x, int64_t ldx,
                                const T* __restrict__ pre, const float* __restrict__ w, int64_t S,
                                int64_t E, int tiles) {
  const int64_t e = int64_t(blockIdx.y) * kThreads + threadIdx.x;
  if (e >= E) return;
  const int64_t b = blockIdx.x / tiles;
  const int64_t t0 = int64_t(blockIdx.x % tiles) * kTile;
  const int64_t t1 = t0 + kTile < S ? t0 + kTile : S;
  const T* xe = x + b * S * ldx + e;    // token t at xe[t · ldx]
  T* dxe = dx + b * S * lddx + e;       // token t at dxe[t · lddx]
  const int64_t in0 = b * S * E + e;    // token t of du and pre at in0 + t · E
  // dpre at token t of this sequence; 0 past its end, where no output exists.
  auto dpre = [&](int64_t t) -> float {
    if (t >= S) return 0.0f;
    return to_float(du[in0 + t * E]) * silu_grad(to_float(pre[in0 + t * E]));
  };

  float wk[K];  // w[e, :]
#pragma unroll
  for (int k = 0; k < K; ++k) wk[k] = w[e * K + k];
  // For the current token s: xw[k] = x at s − (K−1) + k (0 before token 0), gw[j] = dpre at s + j.
  float xw[K], gw[K];
#pragma unroll
  for (int k = 0; k < K - 1; ++k) {
    const int64_t t = t0 - (K - 1) + k;
    xw[k] = t >= 0 ? to_float(xe[t * ldx]) : 0.0f;
    gw[k] = dpre(t0 + k);
  }
  float dwk[K], db = 0.0f;  // this thread's partial sums of dw[e, :] and dbias[e]
#pragma unroll
  for (int k = 0; k < K; ++k) dwk[k] = 0.0f;

  for (int64_t s = t0; s < t1; ++s) {
    xw[K - 1] = to_float(xe[s * ldx]);
    gw[K - 1] = dpre(s + K - 1);
    float d = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) d += wk[k] * gw[K - 1 - k];
    dxe[s * lddx] = from_float<T>(d);
    const float g = gw[0];  // dpre at s
    db += g;
#pragma unroll
    for (int k = 0; k < K; ++k) dwk[k] += g * xw[k];
#pragma unroll
    for (int k = 0; k < K - 1; ++k) {
      xw[k] = xw[k + 1];
      gw[k] = gw[k + 1];
    }
  }
  float* part = partial + int64_t(blockIdx.x) * (K + 1) * E + e;  // [K + 1] at stride E
#pragma unroll
  for (int k = 0; k < K; ++k) part[k * E] = dwk[k];
  part[K * E] = db;
}

// Row j = k · E + e of partial [parts, K + 1, E] summed over parts in order (deterministic), then
// added to dw[e, k] (k < K) or dbias[e] (k = K).
__global__ void conv_reduce_partials_kernel(float* dw, float* dbias, const float* partial, int parts,
                                       int K, int64_t E) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t row = (K + 1) * E;
  if (j >= row) return;
  float s = 0.0f;
  for (int p = 0; p < parts; ++p) s += partial[p * row + j];
  const int64_t k = j / E, e = j - k * E;
  if (k < K) {
    dw[e * K + k] += s;
  } else {
    dbias[e] += s;
  }
}

int64_t token_tiles(int64_t S) { return (S + kTile - 1) / kTile; }

// Calls f(std::integral_constant<int, K>) for the runtime K, 1 <= K <= kMaxK.
template <class F>
void with_taps(int64_t K, F&& f) {
  switch (K) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 5: f(std::integral_constant<int, 5>{}); break;
    case 6: f(std::integral_constant<int, 6>{}); break;
    case 7: f(std::integral_constant<int, 7>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    default: HYMBA_ASSERT(false);  // the launchers check K first
  }
}

// Checks the sizes; returns false when there is nothing to do.
bool check_sizes(const char* op, int64_t B, int64_t S, int64_t E, int64_t K, int64_t ld,
                 const char* ld_name) {
  if (B < 0 || S < 0 || E < 0) fail(op, ": negative size B ", B, ", S ", S, ", E ", E);
  if (K < 1 || K > kMaxK) fail(op, ": kernel size K ", K, " is outside the supported 1..", kMaxK);
  if (B == 0 || S == 0 || E == 0) return false;
  if (ld < E) fail(op, ": ", ld_name, " ", ld, " is below E ", E);
  if (B * token_tiles(S) > INT_MAX) fail(op, ": B ", B, " · S ", S, " is too many tokens");
  if ((E + kThreads - 1) / kThreads > 65535) fail(op, ": E ", E, " is above ", 65535 * kThreads);
  return true;
}

}  // namespace

template <class T>
void conv_silu_forward(T* u, T* pre, const T* x, int64_t ldx, const float* w, const float* bias,
                       int64_t B, int64_t S, int64_t E, int64_t K, cudaStream_t stream) {
  if (!check_sizes("conv_silu_forward", B, S, E, K, ldx, "ldx")) return;
  const int tiles = int(token_tiles(S));
  const dim3 grid(unsigned(B * tiles), unsigned((E + kThreads - 1) / kThreads));
  with_taps(K, [&](auto taps) {
    conv_forward_kernel<decltype(taps)::value, T>
        <<<grid, kThreads, 0, stream>>>(u, pre, x, ldx, w, bias, S, E, tiles);
  });
  HYMBA_CUDA_CHECK_LAUNCH();
}

int64_t conv_silu_backward_workspace(int64_t B, int64_t S, int64_t E, int64_t K) {
  if (B <= 0 || S <= 0 || E <= 0 || K <= 0) return 0;
  return B * token_tiles(S) * (K + 1) * E;
}

template <class T>
void conv_silu_backward(T* dx, int64_t lddx, float* dw, float* dbias, const T* du, const T* x,
                        int64_t ldx, const T* pre, const float* w, int64_t B, int64_t S, int64_t E,
                        int64_t K, float* workspace, cudaStream_t stream) {
  if (!check_sizes("conv_silu_backward", B, S, E, K, ldx, "ldx")) return;
  if (lddx < E) fail("conv_silu_backward: lddx ", lddx, " is below E ", E);
  const int tiles = int(token_tiles(S));
  const int parts = int(B * tiles);
  const dim3 grid(unsigned(parts), unsigned((E + kThreads - 1) / kThreads));
  with_taps(K, [&](auto taps) {
    conv_backward_kernel<decltype(taps)::value, T>
        <<<grid, kThreads, 0, stream>>>(dx, lddx, workspace, du, x, ldx, pre, w, S, E, tiles);
  });
  HYMBA_CUDA_CHECK_LAUNCH();
  const int64_t row = (K + 1) * E;
  conv_reduce_partials_kernel<<<unsigned((row + kThreads - 1) / kThreads), kThreads, 0, stream>>>(
      dw, dbias, workspace, parts, int(K), E);
  HYMBA_CUDA_CHECK_LAUNCH();
}

template void conv_silu_forward<float>(float*, float*, const float*, int64_t, const float*,
                                       const float*, int64_t, int64_t, int64_t, int64_t,
                                       cudaStream_t);
template void conv_silu_forward<bf16>(bf16*, bf16*, const bf16*, int64_t, const float*,
                                      const float*, int64_t, int64_t, int64_t, int64_t,
                                      cudaStream_t);
template void conv_silu_backward<float>(float*, int64_t, float*, float*, const float*,
                                        const float*, int64_t, const float*, const float*, int64_t,
                                        int64_t, int64_t, int64_t, float*, cudaStream_t);
template void conv_silu_backward<bf16>(bf16*, int64_t, float*, float*, const bf16*, const bf16*,
                                       int64_t, const bf16*, const float*, int64_t, int64_t,
                                       int64_t, int64_t, float*, cudaStream_t);

}  // namespace hymba::cuda
