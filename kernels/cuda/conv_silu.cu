// Causal depthwise conv + SiLU kernels. A thread owns C consecutive channels (C = 4 in the forward
// and 2 in the backward where every pointer, E and the strides allow one C-element load; else
// C = 1) of one block of kTile consecutive tokens of one sequence. It first copies its channels of
// every token its block reads (the tile and the K − 1 tokens before it; backward also K − 1 after)
// into its own column of shared memory with asynchronous copies, so all of those loads are in
// flight at once, then walks the tokens in order, keeping the K-token window of x (and, backward,
// the 2K − 1-token window of x and the K-token window of dpre) in registers. The backward computes
// pre again from its x window (conv_pre: the same sum in the same order as the forward), so pre is
// never stored. Consecutive threads take consecutive channels: every load and store of a warp is
// contiguous. The kernels are templated on K and C so the windows are register arrays.
#include "cuda/conv_silu.h"

#include <climits>
#include <cstdint>
#include <type_traits>

#include "core/cuda_check.h"
#include "cuda/alignment.h"
#include "cuda/column_sum.cuh"
#include "cuda/copy_async.cuh"
#include "cuda/dtype.cuh"
#include "cuda/shared_memory.h"

namespace hymba::cuda {

namespace {

constexpr int kThreads = 128;  // threads per block, along the channels
constexpr int kTile = 16;      // tokens per thread (the header's 16)
constexpr int kMaxK = 8;
// Channels per thread on the aligned path (PERF.md, conv + SiLU). The backward keeps a 2K − 1-token
// x window, a K-token dpre window and K + 1 partial sums per channel: at 4 channels that is ~120
// registers a thread, 16 warps an SM, too few loads in flight; 2 channels were 11% faster in bf16
// (unrolling the token loops gave nothing).
constexpr int kWide = 4, kWideBackward = 2;

__device__ __forceinline__ float sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }

// d silu / dv = σ(v) · (1 + v · (1 − σ(v))), as in kernels/cpu/activations.h.
__device__ __forceinline__ float silu_grad(float v) {
  const float s = sigmoid(v);
  return s * (1.0f + v * (1.0f - s));
}

// The C channels at p (one aligned load when C > 1; global or shared memory), as floats.
template <int C, class T>
__device__ __forceinline__ void load_channels(float (&out)[C], const T* p) {
  const Pack<T, C> v = *reinterpret_cast<const Pack<T, C>*>(p);
#pragma unroll
  for (int c = 0; c < C; ++c) out[c] = to_float(v.v[c]);
}

template <int C, class T>
__device__ __forceinline__ void store_channels(T* p, const float (&in)[C]) {
  Pack<T, C> v;
#pragma unroll
  for (int c = 0; c < C; ++c) v.v[c] = from_float<T>(in[c]);
  *reinterpret_cast<Pack<T, C>*>(p) = v;
}

// pre at a token from its window win[0..K) (x at t − (K−1) .. t): the bias first, then the taps in
// order, as the CPU reference sums.
template <int K, int C>
__device__ __forceinline__ void conv_pre(float (&p)[C], const float (&wk)[C][K], const float (&be)[C],
                                         const float (*win)[C]) {
#pragma unroll
  for (int c = 0; c < C; ++c) {
    p[c] = be[c];
#pragma unroll
    for (int k = 0; k < K; ++k) p[c] += wk[c][k] * win[k][c];
  }
}

// A thread's column of staged tokens: row r (token first + r) at rows[r · kThreads]. Each thread
// reads only what it copied itself, so no barrier is needed.
template <int C, class T>
struct Staged {
  using P = Pack<T, C>;
  P* rows;

  // Copies this thread's C channels of `count` tokens from token `first` (token t at xe[t · ld])
  // in, zero for tokens outside [0, S): the zero padding before token 0, nothing past the end.
  // Packs of 4 bytes or more go by cp.async; a 2-byte pack (one bf16 channel) by a plain load.
  __device__ void copy(const T* xe, int64_t ld, int64_t first, int count, int64_t S) const {
    for (int r = 0; r < count; ++r) {
      const int64_t t = first + r;
      const bool inside = t >= 0 && t < S;
      P* dst = rows + r * kThreads;
      if constexpr (sizeof(P) >= 4) {
        copy_async<int(sizeof(P))>(dst, inside ? xe + t * ld : xe, inside);
      } else {
        *dst = inside ? *reinterpret_cast<const P*>(xe + t * ld) : P{};
      }
    }
  }

  // v = the C channels of row r (one shared-memory load of the pack).
  __device__ void load(float (&v)[C], int r) const { load_channels<C>(v, rows[r * kThreads].v); }
};

// Shared memory of a block whose threads stage `tokens` rows of C channels.
template <int C, class T>
constexpr size_t staged_bytes(int tokens) {
  return size_t(tokens) * kThreads * sizeof(Pack<T, C>);
}

// w[e + c, :] and bias[e + c] of a thread's C channels.
template <int K, int C>
__device__ __forceinline__ void load_taps(float (&wk)[C][K], float (&be)[C], const float* __restrict__ w,
                                          const float* __restrict__ bias, int64_t e) {
#pragma unroll
  for (int c = 0; c < C; ++c) {
    be[c] = bias[e + c];
#pragma unroll
    for (int k = 0; k < K; ++k) wk[c][k] = w[(e + c) * K + k];
  }
}

// Grid: x = b · tiles + tile (the token block), y = block of kThreads · C channels. E % C == 0.
// Shared memory: staged_bytes<C, T>(kTile + K − 1).
template <int K, int C, class T>
__global__ void conv_forward_kernel(T* __restrict__ u, const T* __restrict__ x,
                               int64_t ldx, const float* __restrict__ w,
                               const float* __restrict__ bias, int64_t S, int64_t E, int tiles) {
  extern __shared__ unsigned char stage_raw[];
  const int64_t e = (int64_t(blockIdx.y) * kThreads + threadIdx.x) * C;  // channels e .. e + C
  if (e >= E) return;
  const int64_t b = blockIdx.x / tiles;
  const int64_t t0 = int64_t(blockIdx.x % tiles) * kTile;
  const int64_t t1 = t0 + kTile < S ? t0 + kTile : S;
  const int64_t out0 = b * S * E + e;  // token t of u at + t · E
  // x at tokens t0 − (K−1) .. t0 + kTile − 1: token t in row t − t0 + K − 1
  const Staged<C, T> xs{reinterpret_cast<Pack<T, C>*>(stage_raw) + threadIdx.x};
  xs.copy(x + b * S * ldx + e, ldx, t0 - (K - 1), kTile + K - 1, S);
  copy_commit();

  float wk[C][K], be[C];
  load_taps<K, C>(wk, be, w, bias, e);
  copy_wait();
  // win[k][c] = x at token t − (K−1) + k for the current t
  float win[K][C];
#pragma unroll
  for (int k = 0; k < K - 1; ++k) xs.load(win[k], k);
  for (int64_t t = t0; t < t1; ++t) {
    xs.load(win[K - 1], int(t - t0) + K - 1);
    float p[C], a[C];
    conv_pre<K, C>(p, wk, be, win);
#pragma unroll
    for (int c = 0; c < C; ++c) a[c] = p[c] * sigmoid(p[c]);
    store_channels<C>(u + out0 + t * E, a);
#pragma unroll
    for (int k = 0; k < K - 1; ++k)
#pragma unroll
      for (int c = 0; c < C; ++c) win[k][c] = win[k + 1][c];
  }
}

// dx[s] = Σ_k w[:, k] · dpre[s + (K−1) − k] (token s is tap k of output s + (K−1) − k), and this
// block of tokens' share of dw[:, k] = Σ_t dpre[t] · x[t − (K−1) + k] and of dbias = Σ_t dpre[t],
// written to partial[blockIdx.x, :, e]. dpre = du · silu'(pre), with pre computed again from the
// x window (K − 1 extra tokens per block at each end). E % C == 0. Shared memory:
// staged_bytes<C, T>(backward_staged_tokens(K)).
__host__ __device__ constexpr int backward_x_tokens(int K) { return kTile + 2 * (K - 1); }
constexpr int backward_staged_tokens(int K) { return backward_x_tokens(K) + kTile + K - 1; }

template <int K, int C, class T>
__global__ void conv_backward_kernel(T* __restrict__ dx, int64_t lddx, float* __restrict__ partial,
                                const T* __restrict__ du, const T* __restrict__ x, int64_t ldx,
                                const float* __restrict__ w, const float* __restrict__ bias, int64_t S,
                                int64_t E, int tiles) {
  extern __shared__ unsigned char stage_raw[];
  const int64_t e = (int64_t(blockIdx.y) * kThreads + threadIdx.x) * C;  // channels e .. e + C
  if (e >= E) return;
  const int64_t b = blockIdx.x / tiles;
  const int64_t t0 = int64_t(blockIdx.x % tiles) * kTile;
  const int64_t t1 = t0 + kTile < S ? t0 + kTile : S;
  T* dxe = dx + b * S * lddx + e;       // token t at dxe[t · lddx]
  constexpr int kXTokens = backward_x_tokens(K);
  // x at tokens t0 − (K−1) .. t0 + kTile + K − 2 (token t in row t − t0 + K − 1), then du at
  // tokens t0 .. t0 + kTile + K − 2 (token t in row t − t0)
  Pack<T, C>* column = reinterpret_cast<Pack<T, C>*>(stage_raw) + threadIdx.x;
  const Staged<C, T> xs{column}, dus{column + kXTokens * kThreads};
  xs.copy(x + b * S * ldx + e, ldx, t0 - (K - 1), kXTokens, S);
  dus.copy(du + b * S * E + e, E, t0, kTile + K - 1, S);
  copy_commit();

  float wk[C][K], be[C];
  load_taps<K, C>(wk, be, w, bias, e);
  copy_wait();
  // dpre at token t from its x window win[0..K); 0 past the sequence's end, where no output exists.
  auto dpre = [&](float (&g)[C], int64_t t, const float (*win)[C]) {
    if (t >= S) {
#pragma unroll
      for (int c = 0; c < C; ++c) g[c] = 0.0f;
      return;
    }
    float pv[C];
    conv_pre<K, C>(pv, wk, be, win);
    dus.load(g, int(t - t0));
#pragma unroll
    for (int c = 0; c < C; ++c) g[c] *= silu_grad(pv[c]);
  };

  // For the current token s: xw[k] = x at s − (K−1) + k (k < 2K − 1), gw[j] = dpre at s + j.
  float xw[2 * K - 1][C], gw[K][C];
#pragma unroll
  for (int k = 0; k < 2 * K - 2; ++k) xs.load(xw[k], k);
#pragma unroll
  for (int j = 0; j < K - 1; ++j) dpre(gw[j], t0 + j, xw + j);
  float dwk[K][C] = {}, db[C] = {};  // this thread's partial sums of dw[e + c, :] and dbias[e + c]

  for (int64_t s = t0; s < t1; ++s) {
    xs.load(xw[2 * K - 2], int(s - t0) + 2 * K - 2);
    dpre(gw[K - 1], s + K - 1, xw + K - 1);
    float d[C];
#pragma unroll
    for (int c = 0; c < C; ++c) {
      d[c] = 0.0f;
#pragma unroll
      for (int k = 0; k < K; ++k) d[c] += wk[c][k] * gw[K - 1 - k][c];
      const float g = gw[0][c];  // dpre at s
      db[c] += g;
#pragma unroll
      for (int k = 0; k < K; ++k) dwk[k][c] += g * xw[k][c];
    }
    store_channels<C>(dxe + s * lddx, d);
#pragma unroll
    for (int c = 0; c < C; ++c) {
#pragma unroll
      for (int k = 0; k < 2 * K - 2; ++k) xw[k][c] = xw[k + 1][c];
#pragma unroll
      for (int k = 0; k < K - 1; ++k) gw[k][c] = gw[k + 1][c];
    }
  }
  float* part = partial + int64_t(blockIdx.x) * (K + 1) * E + e;  // [K + 1] at stride E
#pragma unroll
  for (int c = 0; c < C; ++c) {
#pragma unroll
    for (int k = 0; k < K; ++k) part[k * E + c] = dwk[k][c];
    part[K * E + c] = db[c];
  }
}

// Column j = k · E + e of partial [parts, K + 1, E] summed over parts (column_sum's fixed order),
// then added to dw[e, k] (k < K) or dbias[e] (k = K).
__global__ void __launch_bounds__(kColumnSumColumns * kColumnSumSlices)
    conv_reduce_partials_kernel(float* dw, float* dbias, const float* partial, int parts, int K, int64_t E) {
  const int64_t row = (K + 1) * E;
  const int64_t j = int64_t(blockIdx.x) * kColumnSumColumns + threadIdx.x;
  const float s = column_sum(partial, parts, row, j, j < row);
  if (threadIdx.y != 0 || j >= row) return;
  const int64_t k = j / E, e = j - k * E;
  if (k < K) {
    dw[e * K + k] += s;
  } else {
    dbias[e] += s;
  }
}

int64_t token_tiles(int64_t S) { return (S + kTile - 1) / kTile; }

// The grid: x = the token blocks of every sequence, y = the channel blocks of kThreads · C.
dim3 conv_grid(int64_t parts, int64_t E, int C) {
  return dim3(unsigned(parts), unsigned((E + int64_t(kThreads) * C - 1) / (int64_t(kThreads) * C)));
}

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

// Launches a staging kernel with `smem` bytes of dynamic shared memory (above 48 KB at fp32 with
// the larger K).
template <class... Params, class... Args>
void launch_staged(void (*kernel)(Params...), dim3 grid, size_t smem, cudaStream_t stream, Args... args) {
  allow_smem(kernel, smem);
  kernel<<<grid, kThreads, smem, stream>>>(args...);
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
void conv_silu_forward(T* u, const T* x, int64_t ldx, const float* w, const float* bias, int64_t B,
                       int64_t S, int64_t E, int64_t K, cudaStream_t stream) {
  if (!check_sizes("conv_silu_forward", B, S, E, K, ldx, "ldx")) return;
  const int tiles = int(token_tiles(S));
  const bool vec = packs_fit<T>(kWide, E, {ldx}, {u, x});
  const dim3 grid = conv_grid(B * tiles, E, vec ? kWide : 1);
  with_taps(K, [&](auto taps) {
    constexpr int kK = decltype(taps)::value;
    constexpr int kTokens = kTile + kK - 1;
    const auto launch = [&](auto kernel, size_t smem) {
      launch_staged(kernel, grid, smem, stream, u, x, ldx, w, bias, S, E, tiles);
    };
    if (vec) {
      launch(conv_forward_kernel<kK, kWide, T>, staged_bytes<kWide, T>(kTokens));
    } else {
      launch(conv_forward_kernel<kK, 1, T>, staged_bytes<1, T>(kTokens));
    }
  });
  HYMBA_CUDA_CHECK_LAUNCH();
}

int64_t conv_silu_backward_workspace(int64_t B, int64_t S, int64_t E, int64_t K) {
  if (B <= 0 || S <= 0 || E <= 0 || K <= 0) return 0;
  return B * token_tiles(S) * (K + 1) * E;
}

template <class T>
void conv_silu_backward(T* dx, int64_t lddx, float* dw, float* dbias, const T* du, const T* x,
                        int64_t ldx, const float* w, const float* bias, int64_t B, int64_t S,
                        int64_t E, int64_t K, float* workspace, cudaStream_t stream) {
  if (!check_sizes("conv_silu_backward", B, S, E, K, ldx, "ldx")) return;
  if (lddx < E) fail("conv_silu_backward: lddx ", lddx, " is below E ", E);
  const int tiles = int(token_tiles(S));
  const int parts = int(B * tiles);
  const bool vec = packs_fit<T>(kWideBackward, E, {lddx, ldx}, {dx, du, x});
  const dim3 grid = conv_grid(parts, E, vec ? kWideBackward : 1);
  with_taps(K, [&](auto taps) {
    constexpr int kK = decltype(taps)::value;
    constexpr int kTokens = backward_staged_tokens(kK);
    const auto launch = [&](auto kernel, size_t smem) {
      launch_staged(kernel, grid, smem, stream, dx, lddx, workspace, du, x, ldx, w, bias, S, E, tiles);
    };
    if (vec) {
      launch(conv_backward_kernel<kK, kWideBackward, T>, staged_bytes<kWideBackward, T>(kTokens));
    } else {
      launch(conv_backward_kernel<kK, 1, T>, staged_bytes<1, T>(kTokens));
    }
  });
  HYMBA_CUDA_CHECK_LAUNCH();
  const int64_t row = (K + 1) * E;
  conv_reduce_partials_kernel<<<column_sum_grid(row), column_sum_block(), 0, stream>>>(dw, dbias, workspace, parts,
                                                                                   int(K), E);
  HYMBA_CUDA_CHECK_LAUNCH();
}

template void conv_silu_forward<float>(float*, const float*, int64_t, const float*, const float*,
                                       int64_t, int64_t, int64_t, int64_t, cudaStream_t);
template void conv_silu_forward<bf16>(bf16*, const bf16*, int64_t, const float*, const float*,
                                      int64_t, int64_t, int64_t, int64_t, cudaStream_t);
template void conv_silu_backward<float>(float*, int64_t, float*, float*, const float*,
                                        const float*, int64_t, const float*, const float*, int64_t,
                                        int64_t, int64_t, int64_t, float*, cudaStream_t);
template void conv_silu_backward<bf16>(bf16*, int64_t, float*, float*, const bf16*, const bf16*,
                                       int64_t, const float*, const float*, int64_t, int64_t,
                                       int64_t, int64_t, float*, cudaStream_t);

}  // namespace hymba::cuda
