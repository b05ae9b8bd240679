// Selective scan kernels, the simple correct versions. Every (b, e) channel is an independent
// recurrence over the tokens, so one thread runs one channel with its state h[N] in registers,
// and a block is one warp of 32 consecutive channels of one batch row: the per-token loads of u,
// delta, z (and the stores) are coalesced across the warp, and the warp shares the token's Bm and
// Cm, which the block stages in shared memory a chunk of tokens at a time.
//
// The backward needs h[t−1] and h[t] while it walks the tokens backwards. It recomputes them:
// a first pass (the forward kernel) stores the state entering every chunk of kChunk tokens; then,
// chunk by chunk from the last, the backward kernel recomputes the chunk's states into workspace
// from that checkpoint and runs the chunk's reverse recurrence. dBm and dCm sum over channels:
// each warp sums its 32 channels with shuffles and writes a partial per (b, warp, t, n), and a
// second kernel adds the warps in order. The parameter gradients sum over b and t: each thread
// keeps per-chunk partial sums (so an fp32 sum never runs over thousands of terms), writes its
// (b, e) total, and a last kernel adds the batch rows in order. No atomics anywhere.
//
// Channels past E in the last warp (padding lanes) run on channel E − 1's inputs with a zero
// upstream gradient, so all their contributions are zero; they have their own workspace slots
// (the channel count is padded to Ep, a multiple of 32) and write no output.
#include "cuda/selective_scan.h"

#include <algorithm>

#include "core/cuda_check.h"
#include "cuda/dtype.cuh"

namespace hymba::cuda {

namespace {

constexpr int kThreads = 32;         // one warp per block
constexpr int kChunk = 64;           // tokens per chunk (checkpoint spacing, Bm/Cm staging)
constexpr int64_t kMaxStateN = 32;   // largest N supported
constexpr int kReduceThreads = 256;  // the final fixed-order reduction kernels

// The scalar activations of kernels/cpu/activations.h, in fp32 with accurate expf / log1pf.
__device__ __forceinline__ float sigmoid(float x) { return 1.f / (1.f + expf(-x)); }
__device__ __forceinline__ float silu(float x) { return x * sigmoid(x); }
__device__ __forceinline__ float silu_grad(float x) {
  const float s = sigmoid(x);
  return s * (1.f + x * (1.f - s));
}
__device__ __forceinline__ float softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }
__device__ __forceinline__ float softplus_grad(float x) { return x > 20.f ? 1.f : sigmoid(x); }

// The sizes every kernel and the workspace layout derive from.
struct Dims {
  int64_t B, S, E, N;
  int64_t warps;   // ceil(E / 32): blocks per batch row
  int64_t Ep;      // warps · 32: channels including the padding lanes
  int64_t chunks;  // ceil(S / kChunk)
  explicit Dims(const ScanShape& s)
      : B(s.B), S(s.S), E(s.E), N(s.N), warps((s.E + kThreads - 1) / kThreads),
        Ep(warps * kThreads), chunks((s.S + kChunk - 1) / kChunk) {}
};

// The backward's workspace, carved in this order.
struct Workspace {
  float* states;   // [B, chunks, N, Ep]: h entering each chunk (h[t0 − 1])
  float* scratch;  // [B, kChunk + 1, N, Ep]: slot 0 = h[t0 − 1], slot j + 1 = h[t0 + j]
  float* pdA;      // [B, N, Ep]: Σ_t g·Δ·a·h[t−1] per (b, e) (dA, before the factor A)
  float* pdt;      // [B, Ep]: Σ_t ddelta per (b, e)
  float* pdD;      // [B, Ep]: Σ_t dy·u per (b, e)
  float* pB;       // [B, warps, S, N]: dBm summed over each warp's channels
  float* pC;       // [B, warps, S, N]: dCm likewise
  int64_t total;   // floats in all

  Workspace(const Dims& d, float* base) {
    int64_t off = 0;
    const auto take = [&](int64_t n) {
      float* p = base ? base + off : nullptr;
      off += n;
      return p;
    };
    states = take(d.B * d.chunks * d.N * d.Ep);
    scratch = take(d.B * (kChunk + 1) * d.N * d.Ep);
    pdA = take(d.B * d.N * d.Ep);
    pdt = take(d.B * d.Ep);
    pdD = take(d.B * d.Ep);
    pB = take(d.B * d.warps * d.S * d.N);
    pC = take(d.B * d.warps * d.S * d.N);
    total = off;
  }
};

// Loads the Bm and Cm rows of tokens [t0, t0 + len) of one batch row (row0 = b·S + t0) into
// shared memory as fp32, [len, N] each. These rows are contiguous in Bm and Cm.
template <class T>
__device__ void stage_chunk(float* sB, float* sC, const T* __restrict__ Bm,
                            const T* __restrict__ Cm, int64_t row0, int len, int N) {
  __syncthreads();  // the previous chunk's values may still be in use
  const int64_t base = row0 * N;
  for (int j = threadIdx.x; j < len * N; j += blockDim.x) {
    sB[j] = to_float(Bm[base + j]);
    sC[j] = to_float(Cm[base + j]);
  }
  __syncthreads();
}

// The forward recurrence of channel e of batch row blockIdx.y. Writes out [B, S, E] unless out
// is null; stores the state entering every chunk to states [B, chunks, N, Ep] unless states is
// null (the backward's first pass, which needs no out). State entries n >= N stay unused.
template <class T, int kMaxN>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(T* __restrict__ out, float* __restrict__ states, const T* __restrict__ u,
                   const T* __restrict__ delta, const float* __restrict__ dt_bias,
                   const float* __restrict__ A_log, const T* __restrict__ Bm,
                   const T* __restrict__ Cm, const float* __restrict__ D,
                   const T* __restrict__ z, int64_t ldz, int64_t S, int64_t E, int N,
                   int64_t Ep, int64_t chunks) {
  __shared__ float sB[kChunk * kMaxN], sC[kChunk * kMaxN];  // [len, N] of the current chunk
  const int64_t b = blockIdx.y;
  const int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x;  // < Ep
  const bool active = e < E;
  const int64_t ec = active ? e : E - 1;  // the channel whose inputs this thread reads
  float A[kMaxN], h[kMaxN];               // [N] of channel ec
#pragma unroll
  for (int n = 0; n < kMaxN; ++n) {
    A[n] = n < N ? -expf(A_log[ec * N + n]) : 0.f;
    h[n] = 0.f;
  }
  const float bias = dt_bias[ec], De = D[ec];
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t t0 = c * kChunk;
    const int len = int(S - t0 < kChunk ? S - t0 : kChunk);
    if (states) {
#pragma unroll
      for (int n = 0; n < kMaxN; ++n)
        if (n < N) states[((b * chunks + c) * N + n) * Ep + e] = h[n];
    }
    stage_chunk(sB, sC, Bm, Cm, b * S + t0, len, N);
    for (int j = 0; j < len; ++j) {
      const int64_t row = b * S + t0 + j;  // token index into [B, S]
      const int64_t i = row * E + ec;
      const float ui = to_float(u[i]);
      const float dt = softplus(to_float(delta[i]) + bias);
      const float dtu = dt * ui;
      float y = De * ui;
#pragma unroll
      for (int n = 0; n < kMaxN; ++n) {
        if (n < N) {
          h[n] = expf(dt * A[n]) * h[n] + dtu * sB[j * N + n];
          y += sC[j * N + n] * h[n];
        }
      }
      if (out && active) out[i] = from_float<T>(y * silu(to_float(z[row * ldz + ec])));
    }
  }
}

// One exchange step of warp_sum_many: the lane holds 2·kHalf values; it gives one half to the
// lane `offset` away and adds the other half to what that lane gives back. The lane keeps the
// upper half when its offset bit is set (swapped to the front first). Recursion rather than a
// loop keeps every index a compile-time constant, so a[] stays in registers.
template <int P, int kHalf>
__device__ __forceinline__ void exchange_halves(float* a, int lane) {
  if constexpr (kHalf >= 1) {
    constexpr int kOffset = 32 * kHalf / P;  // 16, 8, ... for the successive halvings
    if (lane & kOffset) {
#pragma unroll
      for (int i = 0; i < kHalf; ++i) {
        const float t = a[i];
        a[i] = a[i + kHalf];
        a[i + kHalf] = t;
      }
    }
#pragma unroll
    for (int i = 0; i < kHalf; ++i) a[i] += __shfl_xor_sync(0xffffffffu, a[i + kHalf], kOffset);
    exchange_halves<P, kHalf / 2>(a, lane);
  }
}

// Sums P values (P a power of two, at most 32) over the 32 lanes of the warp, all P sums at once:
// the exchange steps halve the values each lane holds (a transposed butterfly, P − 1 shuffles
// instead of 5·P), then plain xor steps finish. Afterwards lane l holds the warp's sum of value
// l / (32 / P). Fixed order, so deterministic. a[] is clobbered.
template <int P>
__device__ __forceinline__ float warp_sum_many(float* a) {
  static_assert(P >= 1 && P <= 32 && (P & (P - 1)) == 0, "P must be a power of two <= 32");
  exchange_halves<P, P / 2>(a, threadIdx.x % 32);
  float s = a[0];
#pragma unroll
  for (int offset = 16 / P; offset >= 1; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
  return s;
}

// The reverse pass of channel e of batch row blockIdx.y, chunk by chunk from the last. Writes
// du, ddelta, dz of the active channels, the warp's dBm / dCm partials and the channel's
// parameter-gradient partials (see Workspace). states must hold forward_kernel's checkpoints.
template <class T, int kMaxN>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(T* __restrict__ du, T* __restrict__ ddelta, T* __restrict__ dz, int64_t lddz,
                    Workspace ws, const T* __restrict__ dout, const T* __restrict__ u,
                    const T* __restrict__ delta, const float* __restrict__ dt_bias,
                    const float* __restrict__ A_log, const T* __restrict__ Bm,
                    const T* __restrict__ Cm, const float* __restrict__ D,
                    const T* __restrict__ z, int64_t ldz, int64_t S, int64_t E, int N,
                    int64_t Ep, int64_t chunks) {
  __shared__ float sB[kChunk * kMaxN], sC[kChunk * kMaxN];  // [len, N] of the current chunk
  const int64_t b = blockIdx.y, warps = gridDim.x;
  const int64_t e = int64_t(blockIdx.x) * kThreads + threadIdx.x;  // < Ep
  const bool active = e < E;
  const int64_t ec = active ? e : E - 1;
  const int lane = threadIdx.x;
  float* __restrict__ scratch = ws.scratch;
  // Slot j, state entry n of this thread's channel in scratch [B, kChunk + 1, N, Ep].
  const auto slot = [&](int j, int n) -> float& {
    return scratch[((b * (kChunk + 1) + j) * N + n) * Ep + e];
  };

  float A[kMaxN], g[kMaxN], dA[kMaxN], h[kMaxN];  // [N]; g = dL/dh[t]
#pragma unroll
  for (int n = 0; n < kMaxN; ++n) {
    A[n] = n < N ? -expf(A_log[ec * N + n]) : 0.f;
    g[n] = dA[n] = h[n] = 0.f;
  }
  const float bias = dt_bias[ec], De = D[ec];
  float dt_sum = 0.f, dD_sum = 0.f;

  for (int64_t c = chunks - 1; c >= 0; --c) {
    const int64_t t0 = c * kChunk;
    const int len = int(S - t0 < kChunk ? S - t0 : kChunk);
    stage_chunk(sB, sC, Bm, Cm, b * S + t0, len, N);

    // Recompute the chunk's states from its checkpoint, exactly as forward_kernel does.
#pragma unroll
    for (int n = 0; n < kMaxN; ++n) {
      if (n < N) {
        h[n] = ws.states[((b * chunks + c) * N + n) * Ep + e];
        slot(0, n) = h[n];
      }
    }
    for (int j = 0; j < len; ++j) {
      const int64_t i = (b * S + t0 + j) * E + ec;
      const float dt = softplus(to_float(delta[i]) + bias);
      const float dtu = dt * to_float(u[i]);
#pragma unroll
      for (int n = 0; n < kMaxN; ++n) {
        if (n < N) {
          h[n] = expf(dt * A[n]) * h[n] + dtu * sB[j * N + n];
          slot(j + 1, n) = h[n];
        }
      }
    }

    // Reverse pass over the chunk; h holds h[t] on entry to each step and h[t − 1] after it.
    // Sums over t are kept per chunk first, then added to the channel's totals.
    float dA_c[kMaxN];
#pragma unroll
    for (int n = 0; n < kMaxN; ++n) dA_c[n] = 0.f;
    float dt_c = 0.f, dD_c = 0.f;
    for (int j = len - 1; j >= 0; --j) {
      const int64_t t = t0 + j, row = b * S + t;
      const int64_t i = row * E + ec;
      const float ui = to_float(u[i]);
      const float x = to_float(delta[i]) + bias;
      const float dt = softplus(x);
      const float zt = to_float(z[row * ldz + ec]);
      const float go = active ? to_float(dout[i]) : 0.f;  // padding lanes contribute nothing
      const float dy = go * silu(zt);
      float y = De * ui;
      float ddt = 0.f, dui = dy * De;
      float part[2 * kMaxN];  // this channel's dBm[t, n] (first kMaxN) and dCm[t, n] (last)
#pragma unroll
      for (int n = 0; n < kMaxN; ++n) {
        part[n] = part[kMaxN + n] = 0.f;
        if (n < N) {
          const float Bn = sB[j * N + n], Cn = sC[j * N + n];
          const float a = expf(dt * A[n]);
          const float h_prev = slot(j, n);  // h[t − 1]; h[−1] = 0 is chunk 0's checkpoint
          const float ah = a * h_prev;
          y += Cn * h[n];
          g[n] += dy * Cn;
          part[kMaxN + n] = dy * h[n];
          ddt += g[n] * (A[n] * ah + Bn * ui);
          dA_c[n] += g[n] * dt * ah;
          part[n] = g[n] * dt * ui;
          dui += g[n] * dt * Bn;
          g[n] *= a;
          h[n] = h_prev;
        }
      }
      const float ddx = ddt * softplus_grad(x);
      if (active) {
        du[i] = from_float<T>(dui);
        ddelta[i] = from_float<T>(ddx);
        dz[row * lddz + e] = from_float<T>(go * y * silu_grad(zt));
      }
      dt_c += ddx;
      dD_c += dy * ui;

      // Sum part[] over the warp's channels; lane l ends up with one of the sums.
      constexpr int kPiece = 2 * kMaxN < 32 ? 2 * kMaxN : 32;
      constexpr int kLanesPerValue = 32 / kPiece;
#pragma unroll
      for (int p = 0; p < 2 * kMaxN; p += kPiece) {
        const float sum = warp_sum_many<kPiece>(part + p);
        const int k = p + lane / kLanesPerValue;  // index into part[]
        const int n = k < kMaxN ? k : k - kMaxN;
        if (lane % kLanesPerValue == 0 && n < N) {
          float* dst = k < kMaxN ? ws.pB : ws.pC;
          dst[((b * warps + blockIdx.x) * S + t) * N + n] = sum;
        }
      }
    }
#pragma unroll
    for (int n = 0; n < kMaxN; ++n) dA[n] += dA_c[n];
    dt_sum += dt_c;
    dD_sum += dD_c;
  }

#pragma unroll
  for (int n = 0; n < kMaxN; ++n)
    if (n < N) ws.pdA[(b * N + n) * Ep + e] = dA[n];
  ws.pdt[b * Ep + e] = dt_sum;
  ws.pdD[b * Ep + e] = dD_sum;
}

// dBm / dCm [B, S, N] (=): the warps' partials pB / pC [B, warps, S, N] added in warp order.
template <class T>
__global__ void reduce_bc_kernel(T* __restrict__ dBm, T* __restrict__ dCm,
                                 const float* __restrict__ pB, const float* __restrict__ pC,
                                 int64_t warps, int64_t SN, int64_t total) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;  // (b, t, n)
  if (j >= total) return;
  const int64_t first = (j / SN) * warps * SN + j % SN;  // partial of warp 0
  float sB = 0.f, sC = 0.f;
  for (int64_t w = 0; w < warps; ++w) {
    sB += pB[first + w * SN];
    sC += pC[first + w * SN];
  }
  dBm[j] = from_float<T>(sB);
  dCm[j] = from_float<T>(sC);
}

// ddt_bias [E], dA_log [E, N], dD [E] (+=): the (b, e) partials added in batch order. One
// thread per (e, n) of dA_log, and per e of the others (so max(E·N, E) threads).
__global__ void reduce_params_kernel(float* __restrict__ ddt_bias, float* __restrict__ dA_log,
                                     float* __restrict__ dD, const float* __restrict__ pdA,
                                     const float* __restrict__ pdt,
                                     const float* __restrict__ pdD,
                                     const float* __restrict__ A_log, int64_t B, int64_t E, int N,
                                     int64_t Ep) {
  const int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j < E * N) {
    const int64_t e = j / N, n = j % N;
    float s = 0.f;
    for (int64_t b = 0; b < B; ++b) s += pdA[(b * N + n) * Ep + e];
    dA_log[j] += s * -expf(A_log[j]);  // A = −exp(A_log), so dA/dA_log = A
  }
  if (j < E) {
    float st = 0.f, sd = 0.f;
    for (int64_t b = 0; b < B; ++b) {
      st += pdt[b * Ep + j];
      sd += pdD[b * Ep + j];
    }
    ddt_bias[j] += st;
    dD[j] += sd;
  }
}

unsigned reduce_blocks(int64_t n) { return unsigned((n + kReduceThreads - 1) / kReduceThreads); }

void check_stride(const char* op, const char* name, int64_t ld, int64_t E) {
  if (ld < E) fail(op, ": ", name, "=", ld, " is below the channel count E=", E);
}

void check_shape(const char* op, const ScanShape& s) {
  if (s.B < 0 || s.S < 0 || s.E < 0) fail(op, ": negative size B=", s.B, " S=", s.S, " E=", s.E);
  if (s.N < 0 || s.N > kMaxStateN)
    fail(op, ": state size N=", s.N, " is outside the supported 0..", kMaxStateN);
  if (s.B > 65535) fail(op, ": batch B=", s.B, " is above the supported 65535");
}

// Runs forward_kernel with the register arrays sized for N.
template <class T>
void launch_forward(T* out, float* states, const T* u, const T* delta, const float* dt_bias,
                    const float* A_log, const T* Bm, const T* Cm, const float* D, const T* z,
                    int64_t ldz, const Dims& d, cudaStream_t stream) {
  const dim3 grid(unsigned(d.warps), unsigned(d.B));
  const int N = int(d.N);
  const auto run = [&](auto kernel) {
    kernel<<<grid, kThreads, 0, stream>>>(out, states, u, delta, dt_bias, A_log, Bm, Cm, D, z, ldz,
                                          d.S, d.E, N, d.Ep, d.chunks);
  };
  if (N <= 4) {
    run(forward_kernel<T, 4>);
  } else if (N <= 16) {
    run(forward_kernel<T, 16>);
  } else {
    run(forward_kernel<T, 32>);
  }
  HYMBA_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <class T>
void selective_scan_forward(T* out, const T* u, const T* delta, const float* dt_bias,
                            const float* A_log, const T* Bm, const T* Cm, const float* D,
                            const T* z, int64_t ldz, const ScanShape& s, cudaStream_t stream) {
  check_shape("selective_scan_forward", s);
  check_stride("selective_scan_forward", "ldz", ldz, s.E);
  if (s.B == 0 || s.S == 0 || s.E == 0) return;
  launch_forward<T>(out, nullptr, u, delta, dt_bias, A_log, Bm, Cm, D, z, ldz, Dims(s), stream);
}

int64_t selective_scan_backward_workspace(const ScanShape& s) {
  check_shape("selective_scan_backward_workspace", s);
  return Workspace(Dims(s), nullptr).total;
}

template <class T>
void selective_scan_backward(T* du, T* ddelta, T* dz, int64_t lddz, T* dBm, T* dCm,
                             float* ddt_bias, float* dA_log, float* dD, const T* dout, const T* u,
                             const T* delta, const float* dt_bias, const float* A_log,
                             const T* Bm, const T* Cm, const float* D, const T* z, int64_t ldz,
                             const ScanShape& s, float* workspace, cudaStream_t stream) {
  check_shape("selective_scan_backward", s);
  check_stride("selective_scan_backward", "ldz", ldz, s.E);
  check_stride("selective_scan_backward", "lddz", lddz, s.E);
  if (s.B == 0 || s.S == 0) return;  // nothing to write, nothing to add
  if (s.E == 0) {
    // dBm and dCm are sums over no channels; zero bits are 0 in float and bf16 alike.
    if (s.N > 0) {
      const size_t bytes = size_t(s.B * s.S * s.N) * sizeof(T);
      HYMBA_CUDA_CHECK(cudaMemsetAsync(dBm, 0, bytes, stream));
      HYMBA_CUDA_CHECK(cudaMemsetAsync(dCm, 0, bytes, stream));
    }
    return;
  }
  const Dims d(s);
  const Workspace ws(d, workspace);
  // Pass 1: the checkpoints.
  launch_forward<T>(nullptr, ws.states, u, delta, dt_bias, A_log, Bm, Cm, D, z, ldz, d, stream);
  // Pass 2: the reverse recurrence, with the register arrays sized for N.
  const auto run = [&](auto kernel) {
    kernel<<<dim3(unsigned(d.warps), unsigned(d.B)), kThreads, 0, stream>>>(
        du, ddelta, dz, lddz, ws, dout, u, delta, dt_bias, A_log, Bm, Cm, D, z, ldz, d.S, d.E,
        int(d.N), d.Ep, d.chunks);
    HYMBA_CUDA_CHECK_LAUNCH();
  };
  if (d.N <= 4) {
    run(backward_kernel<T, 4>);
  } else if (d.N <= 16) {
    run(backward_kernel<T, 16>);
  } else {
    run(backward_kernel<T, 32>);
  }
  // Pass 3: the fixed-order sums over channels and over batch rows.
  const int64_t bsn = d.B * d.S * d.N;
  if (bsn > 0) {
    reduce_bc_kernel<T><<<reduce_blocks(bsn), kReduceThreads, 0, stream>>>(
        dBm, dCm, ws.pB, ws.pC, d.warps, d.S * d.N, bsn);
    HYMBA_CUDA_CHECK_LAUNCH();
  }
  const int64_t params = std::max(d.E * d.N, d.E);
  reduce_params_kernel<<<reduce_blocks(params), kReduceThreads, 0, stream>>>(
      ddt_bias, dA_log, dD, ws.pdA, ws.pdt, ws.pdD, A_log, d.B, d.E, int(d.N), d.Ep);
  HYMBA_CUDA_CHECK_LAUNCH();
}

#define HYMBA_INSTANTIATE_SCAN(T)                                                                 \
  template void selective_scan_forward<T>(T*, const T*, const T*, const float*, const float*,     \
                                          const T*, const T*, const float*, const T*, int64_t,    \
                                          const ScanShape&, cudaStream_t);                        \
  template void selective_scan_backward<T>(T*, T*, T*, int64_t, T*, T*, float*, float*, float*,   \
                                           const T*, const T*, const T*, const float*,            \
                                           const float*, const T*, const T*, const float*,        \
                                           const T*, int64_t, const ScanShape&, float*,           \
                                           cudaStream_t);
HYMBA_INSTANTIATE_SCAN(float)
HYMBA_INSTANTIATE_SCAN(bf16)
#undef HYMBA_INSTANTIATE_SCAN

}  // namespace hymba::cuda
