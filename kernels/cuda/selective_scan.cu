// Selective scan kernels, v2.3 (the fast kernels of the scan issue). The op is a B·E·N-wide bundle
// of independent first-order recurrences over t, so the design counts instructions per
// (t, e, n) "element" (B·S·E·N = 223 M of them at the model's size), the exp unit (MUFU, 16 lanes
// per clock per SM), the shared-memory and shuffle traffic (one pipe per SM: a 16-byte load is
// 2-4 wavefronts whatever its broadcasts) and the warps per scheduler (SMSP), not bytes: bytes
// are 0.10 ms (bf16) and stay well under the instruction time. What binds (ncu, v2.2): latency,
// with 2 warps a scheduler; the largest stall is an add waiting on a shuffle of a butterfly, next
// the dependent FP chains and shared loads. More warps with fewer states a lane did not help
// (docs/PERF.md, v2.2), nor did the dBm/dCm sums through shared memory in place of the
// butterflies (fewer issue slots, 50% more shared-memory wavefronts: backward +7.6%, v2.3).
//
// Mapping. A channel (b, e) is owned by R lanes of one warp, each holding kStates = 4 of its N
// states in registers (R = 1, 2, 4, 8 for N <= 4, 8, 16, 32; states past N are padding with
// B = C = 0, which stay 0 and add nothing). A warp holds L = 32/R channels side by side; a block
// of W warps holds CB = W·L channels (W = 8 for R >= 4: CB = 64 at N = 16). Why 4 states a lane:
// per token the recurrence costs 4-5 instructions per state (FMUL Δ·A, MUFU.EX2, FMUL Δu·B, FFMA
// h, FFMA C·h) and the sums over n cost shuffles per token and channel; one state per lane (v1)
// pays ~4 shuffle instructions per element for the n-sums, 4 states a lane 0.75, and 4 states x
// 16 tokens x 2 (the backward's saved a and h) is the most a lane can keep in registers.
// Per-(token, channel) work (softplus, silu, bf16 converts) is done once per (t, e) by a staging
// thread, which writes fp32 values to shared memory that the R lanes of the channel read as
// broadcasts; B/C rows are read as float4 broadcasts. The next sub-chunk's u, delta, z (and dout,
// and the checkpoint) are copied global -> shared with cp.async in 2- or 4-channel packs (when every
// pointer, E and the strides allow; else the staging thread loads element by element) while the
// current one is computed, so they cost no registers; one __syncthreads per sub-chunk, every
// per-sub-chunk buffer doubled.
//
// Sums over n (y, and in the backward Σ g·B and Σ A·g·a·h) are transposed butterflies over the R
// lanes and R tokens at once (2R in the forward's y) (R − 1 shuffle+add per R tokens and value
// instead of log2 R per token); the lane that ends up with token t's sums does that token's
// epilogue. Sums over e (dBm, dCm) go the other way: per token a lane has 4 values per quantity;
// a transposed butterfly over the L channel lanes of the warp (over 2L/4 tokens at once) leaves
// two warp sums per lane,
// the warps are added in warp order through shared memory, and one partial per block of 64
// channels (not per 16 as in v1: 4x less partial traffic, 28 MB each way at the model size) goes
// to the workspace, added in block order by the finishing kernel (which also adds the (b, e)
// parameter-gradient sums over b). No float atomics anywhere.
//
// Checkpoints and the single exp pass of the backward. The forward saves the state entering
// every K-token sub-chunk (K = 16; 8 for N <= 8), fp32, [B, ceil(S/K), E, 4R]: 56 MB at the
// model's size per layer (twice a bf16 [B, S, E] tensor), the price of the backward's one exp
// pass. The backward walks the sub-chunks from the last: from the checkpoint it runs the
// sub-chunk forward once, keeping a_t = exp(Δ_t·A) and h_{t−1} for its 16 tokens x 4 states in
// registers (128 of them), adds the terms that need only h (y for dz, dCm), then runs the
// reverse recurrence from those registers (g += dy·C, g *= a; Σ g·B, dBm, and g·a·h for dA and
// dΔ). So the backward runs one exp per element and never the forward: 2 exps per element for
// forward + backward (v1 ran 4). Without checkpoints from the caller, the backward first runs
// the forward kernel without output (a template flag, so no branch splits the unrolled token
// loop; the state recurrence is the same instructions, so it gives the forward's checkpoint
// bits) into its workspace. Halving the checkpoint memory
// (K = 32) would need a second exp pass (a recomputed in the reverse sweep) or 256 registers.
//
// Resets (doc_start): the staging thread replaces Δ in the exponent by +inf at a reset token, so
// exp2(+inf·A·log2 e) = 0 (A·log2 e is kept below −1e-30), with no instruction in the inner loop.
//
// Launch geometry at the bench sizes (B = 2, E = 3200, N = 16: R = 4, 8 channels a warp, W = 8):
// a grid of 50 x 2 = 100 blocks of 256 threads for both kernels, one block (8 warps, 2 per SMSP)
// per SM, 32 SMs idle. Balance is set by warps per SMSP, not blocks per SM: 800 warps of equal
// work over 528 SMSPs is 1.52 on average and 2 at most whatever the grid (more, smaller blocks
// give the same maximum and smaller dBm/dCm groups), so the busiest SMSPs run 1.32x the average.
// Spreading better needs splitting the sequence, which costs an extra exp pass (a segment's entry
// state is not known before the previous segment ends).
//
// Count per token and lane at N = 16 (4 elements; PTX counted, SASS sizes from K = 16 vs 8):
// - forward: recurrence 16 (FMUL Δ·A, MUFU.EX2, FMUL Δu·B, FFMA h per state) + y 4 + LDS 3 +
//   n-sum butterfly 3 + epilogue 1 ≈ 26-27 (SASS: 26); per-(t, e) staging ~40 (expf, log1pf,
//   silu, converts) / 4 lanes ≈ 10; stores and loop ~3: ≈ 39 issue slots, 4.75 MUFU (8 cycles
//   each per warp). Issue and MUFU are level at ~38-40 cycles per token and warp.
// - backward: recompute 24 (EX2, h, y, dy·h) + reverse 28 + LDS 7 + dBm/dCm butterflies 28 (the
//   largest item: 8 values a token over 8 channel lanes, a shuffle, an add and 2 selects each)
//   + n-sum butterflies 9 + epilogues 4 ≈ 100 (PTX 97); staging ~55 / 4 ≈ 14; output stores,
//   warp-sum adds, loop ≈ 10-15: ≈ 125-130 issue slots (~31 per element), MUFU 5.3 (not binding).
// Predicted (written before any measurement; H100 SXM at ~1.75 GHz, the busiest SMSPs running
// 2 warps at IPC ~0.85-0.95):
//   S = 2176: forward 0.10-0.13 ms, backward 0.30-0.40 ms (+ ~0.01 ms finishing kernel),
//   forward + backward ~0.42-0.53 ms, bf16 and fp32 alike (instruction-bound: with checkpoints
//   and dBm/dCm partials both passes move ~0.47 GB in bf16, ~0.78 GB in fp32, 0.16 / 0.26 ms at
//   3 TB/s, under the instruction time); S = 8704: 4x.
//   The backward without checkpoints adds a forward without output (~0.08-0.10 ms).
// That misses the 0.25 ms goal: at ~31 issue slots per element the backward alone is ~0.24 ms
// even with perfect balance and issue. Where it goes: the dBm/dCm butterflies (7 per element),
// recomputing y and dy·h for dz and dCm (3), the per-(t, e) staging (3.5), the imbalance (1.32x).
//
// (The count above is v2's. v2.2 measures 147 issued instructions per warp and token in the
// backward, not 125-130, at 2 warps a scheduler and IPC ~0.5 each, not 0.85-0.95.)
//
// Resources (nvcc 13, -arch=sm_90a -O3 --resource-usage, no spills anywhere): forward 107-150
// registers (R = 4: 124 bf16 / 120-126 fp32), backward 183-254 (R = 4: 254 bf16 / 250 fp32),
// finish 32. Dynamic shared memory at R = 4: forward 58 KB bf16 / 70 KB fp32, backward 175 KB /
// 191 KB (one block an SM either way), opted in with cudaFuncSetAttribute.
#include "cuda/selective_scan.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/cuda_check.h"
#include "cuda/alignment.h"
#include "cuda/copy_async.cuh"
#include "cuda/dtype.cuh"
#include "cuda/shared_memory.h"

namespace hymba::cuda {

namespace {

constexpr int64_t kMaxStateN = 32;   // largest N supported
constexpr int kStates = 4;           // states per lane
constexpr int kFinishThreads = 256;  // the finishing (fixed-order reduction) kernel
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// The launch shape for R lanes per channel (see the top of the file).
template <int R_>
struct Cfg {
  static constexpr int R = R_, Q = kStates;  // lanes a channel, states a lane
  static_assert(R == 1 || R == 2 || R == 4 || R == 8, "R lanes per channel: 1, 2, 4 or 8");
  static constexpr int kNP = Q * R;               // padded state count
  static constexpr int kL = 32 / R;               // channels per warp
  static constexpr int kWarps = R >= 4 ? 8 : 2 * R;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kCB = kWarps * kL;         // channels per block: 64, 64, 64, 32
  static constexpr int kK = R >= 4 ? 16 : 8;      // tokens per sub-chunk = checkpoint spacing
  // Tokens per dBm/dCm butterfly: 2·L/Q where the sub-chunk holds them, so a lane ends with the
  // sums of kVPL = 2 (token, state) pairs (else L/Q tokens, kVPL = 1). Two values a lane halve the
  // butterflies' dependent shuffle levels per token; the FADD waiting on a SHFL was the
  // backward's largest stall (16% of the samples, ncu).
  static constexpr int kTE = 2 * kL / Q <= kK ? 2 * kL / Q : kL / Q;
  static constexpr int kVPL = kTE * Q / kL;
  static_assert(kK % (2 * R) == 0 && kK % kTE == 0, "sub-chunks hold whole butterflies");
  // Channels per staging pack: a thread copies (4 to 16 bytes), converts and stores kPack
  // consecutive channels of a token row; at most 4, and fewer where that gives every thread of the
  // block a pack per sub-chunk (with half the threads staging, the other half waited at the
  // barrier: 23% of the forward's stall samples, ncu).
  static constexpr int kPack = kK * kCB / kThreads < 4 ? kK * kCB / kThreads : 4;
  static_assert(kPack == 2 || kPack == 4, "packs of 2 or 4 channels");

  // Shared memory, bytes, in the order the kernels carve it. Forward: (Δe, Δu) and (u, silu z)
  // float2 and out float per (t, e), B and C per (t, n), dt_bias, the loaded u, delta, z; each
  // per-sub-chunk part double-buffered. Backward: (Δe, Δu, dy, Δ), (u, softplus', dout·silu'(z),
  // -) and (du, dΔ, dz, -) float4 per (t, e), B and C, the warps' dBm/dCm sums, the loaded
  // checkpoints, dt_bias, the loaded u, delta, z, dout.
  //
  // Row strides. A token's row of a per-(t, e) array is padded: an epilogue has lane r of each
  // channel at token j0 + r (backward) or j0 + 2r + m (forward), and unpadded rows (a multiple of
  // 128 bytes) put those tokens in the same banks, a 4-way conflict at R = 4 (ncu: 22% of the
  // backward's shared-memory wavefronts were such excess). The pads shift the epilogue's tokens
  // by 8 banks each: 32 bytes a row in the backward, 16 in the forward, whose tokens are 2 apart.
  // A warp's dBm/dCm rows (2·NP floats, NP written per butterfly token) are NP + 32 floats apart,
  // so each 32 lanes x 4 bytes of a butterfly's stores (L/Q tokens of NP floats) fall in distinct
  // banks.
  static constexpr int kRow2 = kCB + 2;    // float2 records a token row (forward)
  static constexpr int kRow1 = kCB + 4;    // float records a token row (forward out)
  static constexpr int kRow4 = kCB + 2;    // float4 records a token row (backward)
  static constexpr int kRedRow = kNP + 32;  // floats a dBm/dCm row (2·NP used)
  template <class T>
  static constexpr size_t kFwdSmem = 2 * size_t(kK) * (kRow2 * 2 * 8 + kRow1 * 4) +
                                     2 * 2 * size_t(kK) * kNP * 4 + kCB * 4 +
                                     2 * 3 * size_t(kK) * kCB * sizeof(T);
  template <class T>
  static constexpr size_t kBwdSmem = 2 * size_t(kK) * kRow4 * 3 * 16 +
                                     2 * 2 * size_t(kK) * kNP * 4 +
                                     2 * size_t(kWarps) * kK * kRedRow * 4 + 2 * kCB * kNP * 4 +
                                     kCB * 4 + 2 * 4 * size_t(kK) * kCB * sizeof(T);
};

// Calls f(Cfg<R>{}) with the lanes per channel for state size N.
template <class F>
void with_layout(int64_t N, F&& f) {
  if (N <= 4) {
    f(Cfg<1>{});
  } else if (N <= 8) {
    f(Cfg<2>{});
  } else if (N <= 16) {
    f(Cfg<4>{});
  } else {
    f(Cfg<8>{});
  }
}

// ---- device helpers ----

__device__ __forceinline__ unsigned char* dynamic_smem() {
  extern __shared__ __align__(16) unsigned char smem[];
  return smem;
}

// 2^x and 1/x (exp(Δ·A) is 2^(Δ·A·log2 e)). With bf16 activations the bare MUFU approximations
// (ftz; relative error ~2^-22, far below bf16 rounding); with fp32 activations exp2f and a
// correctly rounded division, since the fp32 path is held to the CPU model's float accuracy (the
// approximations alone were enough to put the fp32 GPU-model test over its bound).
template <class T>
__device__ __forceinline__ float ex2(float x) {
#ifdef __CUDA_ARCH__
  if constexpr (!std::is_same_v<T, float>) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
  }
#endif
  return exp2f(x);
}

template <class T>
__device__ __forceinline__ float rcp(float x) {
#ifdef __CUDA_ARCH__
  if constexpr (!std::is_same_v<T, float>) {
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
  }
#endif
  return 1.f / x;
}

// e^x for the per-(t, e) staging (softplus, sigmoid): with bf16 activations one MUFU ex2 of
// x·log2 e (relative error a few 2^-22 for |x| <= 20, far below the bf16 rounding of what it
// feeds) in place of expf's range reduction; fp32 keeps expf (see ex2). Measured: the forward
// 2.4% faster. log1p stays log1pf: a MUFU lg2 form (with a series near 0) made the forward 4%
// slower, the MUFU being the forward's busiest unit after the issue slots (docs/PERF.md, v2.3).
template <class T>
__device__ __forceinline__ float exp_of(float x) {
  if constexpr (std::is_same_v<T, float>) {
    return expf(x);
  } else {
    return ex2<T>(x * kLog2e);
  }
}

// σ(z) = 1 / (1 + e^−z), for silu(z) = z·σ(z) and its derivative.
template <class T>
__device__ __forceinline__ float sigmoid_of(float z) {
  return rcp<T>(1.f + exp_of<T>(-z));
}

// Δ = softplus(x) (identity above 20, as kernels/cpu/activations.h) from x and e^x. One function
// for the forward and the backward, so both scan the same Δ.
__device__ __forceinline__ float softplus_of(float x, float ex) { return x > 20.f ? x : log1pf(ex); }

// Each lane holds a[0..V); the P lanes whose lane bits STRIDE, 2·STRIDE, ..., P/2·STRIDE differ
// add them up, transposed: the lane with group index q = (lane / STRIDE) % P ends with the group
// sums of a[q·V/P + m] in a[m], m < V/P. Each level gives away half of the values still held and
// adds the other half to what the partner gave (V/2 + V/4 + ... shuffles in all, not V·log2 P);
// every sum is formed on one lane in a fixed order, so it is deterministic. Recursion keeps every
// index a compile-time constant (a[] stays in registers). a[V/P..V) is clobbered.
template <int V, int P, int STRIDE>
__device__ __forceinline__ void transposed_sum(float* a, int lane) {
  static_assert(P >= 1 && V >= P && V % P == 0, "V values over P lanes");
  if constexpr (P > 1) {
    constexpr int H = V / 2, kOffset = STRIDE * P / 2;
    const bool upper = (lane & kOffset) != 0;  // keeps a[H..V), gives a[0..H)
#pragma unroll
    for (int i = 0; i < H; ++i) {
      const float give = upper ? a[i] : a[i + H];
      const float keep = upper ? a[i + H] : a[i];
      a[i] = keep + __shfl_xor_sync(0xffffffffu, give, kOffset);
    }
    transposed_sum<H, P / 2, STRIDE>(a, lane);
  }
}

// After transposed_sum over a warp's channel lanes, the lane of channel slot q holds in a[m] the
// warp's sums of (token, state) pair VPL·q + m of a butterfly group (pair = token·Q + state):
// stores them at row[token·row_stride + state] (row: the group's first token, this lane's states).
template <int VPL, int Q>
__device__ __forceinline__ void store_pair_sums(float* row, const float* a, int q, int row_stride) {
#pragma unroll
  for (int m = 0; m < VPL; ++m) {
    const int pair = VPL * q + m;
    row[(pair / Q) * row_stride + pair % Q] = a[m];
  }
}

// W consecutive elements p[i, i + W): the first `valid` exist (0..W), the rest read as zero. One
// vector access when `vec` (every pointer aligned, E and the strides multiples of W) and the
// pack is whole.
template <class T, int W>
__device__ __forceinline__ Pack<T, W> load_pack(const T* __restrict__ p, int64_t i, int valid,
                                                bool vec) {
  Pack<T, W> v;
  if (vec && valid == W) {
    v = *reinterpret_cast<const Pack<T, W>*>(p + i);
  } else {
#pragma unroll
    for (int w = 0; w < W; ++w) v.v[w] = w < valid ? p[i + w] : from_float<T>(0.f);
  }
  return v;
}

template <class T, int W>
__device__ __forceinline__ void store_pack(T* __restrict__ p, int64_t i, const Pack<T, W>& v,
                                           int valid, bool vec) {
  if (vec && valid == W) {
    *reinterpret_cast<Pack<T, W>*>(p + i) = v;
  } else {
#pragma unroll
    for (int w = 0; w < W; ++w)
      if (w < valid) p[i + w] = v.v[w];
  }
}

// Where channel c of a token row sits in the per-(token, channel) shared arrays: permuted within
// aligned groups of 8. A staging thread writes (and the store step reads) the 4 or 8 consecutive
// channels of its pack, so without the permutation the 8 lanes of a shared-memory phase
// would all hit one bank group; the scan lanes read 8 consecutive channels, which stay in one
// 128-byte line either way.
__device__ __forceinline__ int swz(int c) { return c ^ ((c >> 3) & 7); }

// How many of the W channels [ev, ev + W) of token t exist.
__device__ __forceinline__ int valid_count(int64_t t, int64_t S, int64_t ev, int64_t E, int W) {
  if (t >= S || ev >= E) return 0;
  return E - ev < W ? int(E - ev) : W;
}

// W consecutive floats (W = 2 or 4; p aligned to W floats) in one vector access.
template <int W>
__device__ __forceinline__ void load_floats(float* v, const float* p) {
  static_assert(W == 2 || W == 4, "float2 or float4");
  if constexpr (W == 4) {
    const float4 x = *reinterpret_cast<const float4*>(p);
    v[0] = x.x, v[1] = x.y, v[2] = x.z, v[3] = x.w;
  } else {
    const float2 x = *reinterpret_cast<const float2*>(p);
    v[0] = x.x, v[1] = x.y;
  }
}

// Σ_i c[i]·h[i] over a lane's Q states (y's share of the lane), in state order.
template <int Q>
__device__ __forceinline__ float dot_states(const float* c, const float* h) {
  float y = c[0] * h[0];
#pragma unroll
  for (int i = 1; i < Q; ++i) y = fmaf(c[i], h[i], y);
  return y;
}

// This lane's states 4r .. 4r + 3 of channel e: A·log2 e per state (kept below −1e-30, so a reset's
// +inf Δ gives exp2(−inf) = 0; padding states get −1) and the state's start value from
// start [B, E, N] (h0 in the forward, dhT in the backward; zero where null or padding).
__device__ __forceinline__ void init_states(float* A2, float* start_value, const float* A_log,
                                            const float* start, int64_t b, int64_t e, int64_t E,
                                            int N, int r, bool active) {
#pragma unroll
  for (int i = 0; i < kStates; ++i) {
    const int n = kStates * r + i;
    const bool ok = active && n < N;
    A2[i] = ok ? fminf(-expf(A_log[e * N + n]) * kLog2e, -1e-30f) : -1.f;
    start_value[i] = ok && start ? start[(b * E + e) * N + n] : 0.f;
  }
}

// This thread's share of the B and C rows of tokens [t0, t0 + kTokens) of batch row b: elements
// k = tid + m·kThreads of the [kTokens, NP] tiles, (t, n) = (k / NP, k % NP), zero past S and N.
template <class T, int kTokens, int NP, int kThreads>
__device__ __forceinline__ void load_bc(T* rb, T* rc, const T* __restrict__ Bm,
                                        const T* __restrict__ Cm, int64_t b, int64_t S, int N,
                                        int64_t t0, int tid) {
  constexpr int kBC = kTokens * NP, kPerThread = (kBC + kThreads - 1) / kThreads;
#pragma unroll
  for (int m = 0; m < kPerThread; ++m) {
    const int k = tid + m * kThreads;
    if (kBC % kThreads != 0 && k >= kBC) break;
    const int64_t t = t0 + k / NP;
    const int n = k % NP;
    const bool ok = t < S && n < N;
    rb[m] = ok ? Bm[(b * S + t) * N + n] : from_float<T>(0.f);
    rc[m] = ok ? Cm[(b * S + t) * N + n] : from_float<T>(0.f);
  }
}

// The B and C elements load_bc read, as floats into this sub-chunk's shared tiles sB, sC [K, NP].
template <class T, int kTokens, int NP, int kThreads>
__device__ __forceinline__ void stage_bc(float* sB, float* sC, const T* rb, const T* rc, int tid) {
  constexpr int kBC = kTokens * NP, kPerThread = (kBC + kThreads - 1) / kThreads;
#pragma unroll
  for (int m = 0; m < kPerThread; ++m) {
    const int k = tid + m * kThreads;
    if (kBC % kThreads != 0 && k >= kBC) break;
    sB[k] = to_float(rb[m]);
    sC[k] = to_float(rc[m]);
  }
}

// ---- kernels ----

template <class T>
struct ForwardArgs {
  T* out;       // [B, S, E] or null (checkpoints only)
  float* hT;    // [B, E, N] or null
  float* ckpt;  // [B, chunks, E, NP] or null
  const T *u, *delta, *z;  // [B, S, E]; z at stride ldz
  int64_t ldz;
  const T *Bm, *Cm;                      // [B, S, N]
  const float *dt_bias, *A_log, *D, *h0;  // [E], [E, N], [E], [B, E, N] or null
  const uint8_t* doc_start;               // [B, S] or null
  int64_t S, E, chunks;
  int N;
  bool vec;       // kPack-channel packs for u, delta, z, out
  bool ckpt_vec;  // float4 checkpoint stores
};

// The forward of channels [blockIdx.x·CB, +CB) of batch row blockIdx.y: out (unless null), the
// state entering every sub-chunk (unless ckpt is null), the final state (unless hT is null).
// kOut: out is written (a template flag, so no branch splits the unrolled token loop).
template <class T, class C, bool kOut>
__global__ void __launch_bounds__(C::kThreads, 1)
    scan_forward_kernel(const ForwardArgs<T> p) {
  constexpr int R = C::R, Q = C::Q, K = C::kK, CB = C::kCB, NP = C::kNP, L = C::kL;
  constexpr int kThreads = C::kThreads, RW2 = C::kRow2, RW1 = C::kRow1;
  constexpr int VW = C::kPack, kVecs = CB / VW, kPackBytes = VW * int(sizeof(T));  // packs per token row
  constexpr int kSlots = K * kVecs, kSlotsPerThread = (kSlots + kThreads - 1) / kThreads;
  constexpr int kBC = K * NP, kBCPerThread = (kBC + kThreads - 1) / kThreads;
  static_assert(kThreads % kVecs == 0, "a thread's packs share their channels");

  unsigned char* smem = dynamic_smem();
  float2* sScan = reinterpret_cast<float2*>(smem);  // [2][K][RW2]: (Δ or +inf at a reset, Δ·u)
  float2* sEpi = sScan + 2 * K * RW2;               // [2][K][RW2]: (u, silu(z))
  float* sOut = reinterpret_cast<float*>(sEpi + 2 * K * RW2);  // [2][K][RW1]: out
  float* sB = sOut + 2 * K * RW1;                   // [2][K][NP]
  float* sC = sB + 2 * K * NP;                      // [2][K][NP]
  float* sDt = sC + 2 * K * NP;                     // [CB]: dt_bias
  T* sRaw = reinterpret_cast<T*>(sDt + CB);         // [2][3][K][CB]: u, delta, z as loaded

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int r = lane % R, slot = lane / R, ch = warp * L + slot;  // states 4r.., channel
  const int64_t S = p.S, E = p.E, b = blockIdx.y, e0 = int64_t(blockIdx.x) * CB, e = e0 + ch;
  const int N = p.N;
  const bool active = e < E;
  const int chs = swz(ch);  // this lane's channel in the shared per-(t, e) arrays

  float A2[Q], h[Q];  // A·log2 e, the state
  init_states(A2, h, p.A_log, p.h0, b, e, E, N, r, active);
  const float De = active ? p.D[e] : 0.f;
  for (int k = tid; k < CB; k += kThreads) sDt[k] = e0 + k < E ? p.dt_bias[e0 + k] : 0.f;

  // Staging: this thread's packs are (token v / kVecs, channels ev..ev + VW) for its slots v.
  const int cv = tid % kVecs;
  const int64_t ev = e0 + int64_t(cv) * VW;
  uint8_t rf[kSlotsPerThread];                 // doc_start of the slots' tokens
  T rb[kBCPerThread], rc[kBCPerThread];        // B, C elements (t, n) = (k / NP, k % NP)

  // The loads of sub-chunk c: u, delta, z packs into sRaw[c & 1] (aligned case; otherwise stage
  // reads them itself), B, C and the reset flags into registers.
  const auto prefetch = [&](int64_t c) {
    const int64_t t0 = c * K;
    const int rbuf = int(c & 1);
#pragma unroll
    for (int m = 0; m < kSlotsPerThread; ++m) {
      const int v = tid + m * kThreads;
      if (kSlots % kThreads != 0 && v >= kSlots) break;
      const int j = v / kVecs;
      const int64_t t = t0 + j, row = b * S + t;
      rf[m] = p.doc_start && t < S ? p.doc_start[row] : uint8_t(0);
      if (p.vec) {
        const bool ok = valid_count(t, S, ev, E, VW) == VW;
        T* dst = sRaw + (rbuf * 3 * K + j) * CB + cv * VW;  // tensor 0 of buffer rbuf
        copy_async<kPackBytes>(dst, ok ? p.u + row * E + ev : p.u, ok);
        copy_async<kPackBytes>(dst + K * CB, ok ? p.delta + row * E + ev : p.delta, ok);
        if (kOut) copy_async<kPackBytes>(dst + 2 * K * CB, ok ? p.z + row * p.ldz + ev : p.z, ok);
      }
    }
    copy_commit();
    load_bc<T, K, NP, kThreads>(rb, rc, p.Bm, p.Cm, b, S, N, t0, tid);
  };

  // The loaded values, converted once per (t, e), into buffer buf.
  const auto stage = [&](int64_t c, int buf) {
    const int64_t t0 = c * K;
    copy_wait();
#pragma unroll
    for (int m = 0; m < kSlotsPerThread; ++m) {
      const int v = tid + m * kThreads;
      if (kSlots % kThreads != 0 && v >= kSlots) break;
      const int j = v / kVecs;
      const int64_t t = t0 + j, row = b * S + t;
      const int valid = valid_count(t, S, ev, E, VW);
      const T* raw = sRaw + (buf * 3 * K + j) * CB + cv * VW;
      const Pack<T, VW> pu = p.vec ? *reinterpret_cast<const Pack<T, VW>*>(raw)
                                   : load_pack<T, VW>(p.u, row * E + ev, valid, false);
      const Pack<T, VW> pd = p.vec ? *reinterpret_cast<const Pack<T, VW>*>(raw + K * CB)
                                   : load_pack<T, VW>(p.delta, row * E + ev, valid, false);
      float dtb[VW];  // dt_bias of the pack's channels
      load_floats<VW>(dtb, sDt + cv * VW);
      float2* scan = sScan + (buf * K + j) * RW2;
#pragma unroll
      for (int w = 0; w < VW; ++w) {
        const float x = to_float(pd.v[w]) + dtb[w];
        const float dt = softplus_of(x, exp_of<T>(x));
        // Padding (past S or E) scans Δ = Δu = 0: factor 1, no input.
        scan[swz(cv * VW + w)] = w < valid ? make_float2(rf[m] ? INFINITY : dt, dt * to_float(pu.v[w]))
                            : make_float2(0.f, 0.f);
      }
      if constexpr (kOut) {
        const Pack<T, VW> pz = p.vec ? *reinterpret_cast<const Pack<T, VW>*>(raw + 2 * K * CB)
                                     : load_pack<T, VW>(p.z, row * p.ldz + ev, valid, false);
        float2* epi = sEpi + (buf * K + j) * RW2;
#pragma unroll
        for (int w = 0; w < VW; ++w) {
          const float zz = to_float(pz.v[w]);
          epi[swz(cv * VW + w)] = make_float2(to_float(pu.v[w]), zz * sigmoid_of<T>(zz));
        }
      }
    }
    stage_bc<T, K, NP, kThreads>(sB + buf * K * NP, sC + buf * K * NP, rb, rc, tid);
  };

  // out of sub-chunk c from buffer buf, in packs.
  const auto store_out = [&](int64_t c, int buf) {
    const int64_t t0 = c * K;
#pragma unroll
    for (int m = 0; m < kSlotsPerThread; ++m) {
      const int v = tid + m * kThreads;
      if (kSlots % kThreads != 0 && v >= kSlots) break;
      const int j = v / kVecs;
      const int64_t t = t0 + j;
      const int valid = valid_count(t, S, ev, E, VW);
      if (valid == 0) continue;
      Pack<T, VW> o;
#pragma unroll
      for (int w = 0; w < VW; ++w) o.v[w] = from_float<T>(sOut[(buf * K + j) * RW1 + swz(cv * VW + w)]);
      store_pack<T, VW>(p.out, (b * S + t) * E + ev, o, valid, p.vec);
    }
  };

  const int64_t chunks = p.chunks;
  __syncthreads();  // sDt
  if (chunks > 0) prefetch(0);
  for (int64_t c = 0; c < chunks; ++c) {
    const int buf = int(c & 1);
    stage(c, buf);
    if (c + 1 < chunks) prefetch(c + 1);
    if (p.ckpt && active) {  // the state entering sub-chunk c
      float* dst = p.ckpt + ((b * chunks + c) * E + e) * NP + Q * r;
      if (p.ckpt_vec) {
        *reinterpret_cast<float4*>(dst) = make_float4(h[0], h[1], h[2], h[3]);
      } else {
#pragma unroll
        for (int i = 0; i < Q; ++i) dst[i] = h[i];
      }
    }
    __syncthreads();  // buffer buf staged; out of sub-chunk c − 1 complete
    if (kOut && c > 0) store_out(c - 1, buf ^ 1);

    float ybuf[2 * R];  // Σ over this lane's states of C·h, for 2R tokens
#pragma unroll
    for (int j = 0; j < K; ++j) {
      const float2 dd = sScan[(buf * K + j) * RW2 + chs];
      float Bs[Q];
      load_floats<Q>(Bs, sB + (buf * K + j) * NP + Q * r);
#pragma unroll
      for (int i = 0; i < Q; ++i) h[i] = fmaf(ex2<T>(dd.x * A2[i]), h[i], dd.y * Bs[i]);
      if constexpr (kOut) {
        float Cs[Q];
        load_floats<Q>(Cs, sC + (buf * K + j) * NP + Q * r);
        ybuf[j % (2 * R)] = dot_states<Q>(Cs, h);
        // Every 2R tokens (2 values a lane: half the dependent shuffle levels a token of R),
        // lane r ends with y of tokens j0 + 2r and j0 + 2r + 1.
        if (j % (2 * R) == 2 * R - 1) {
          transposed_sum<2 * R, R, 1>(ybuf, lane);
#pragma unroll
          for (int m = 0; m < 2; ++m) {
            const int jj = j - (2 * R - 1) + 2 * r + m;
            const float2 ue = sEpi[(buf * K + jj) * RW2 + chs];
            sOut[(buf * K + jj) * RW1 + chs] = fmaf(De, ue.x, ybuf[m]) * ue.y;
          }
        }
      }
    }
  }
  if (kOut && chunks > 0) {
    __syncthreads();
    store_out(chunks - 1, int((chunks - 1) & 1));
  }
  if (p.hT && active) {
#pragma unroll
    for (int i = 0; i < Q; ++i) {
      const int n = Q * r + i;
      if (n < N) p.hT[(b * E + e) * N + n] = h[i];
    }
  }
}

template <class T>
struct BackwardArgs {
  T *du, *ddelta, *dz;  // [B, S, E]; dz at stride lddz
  int64_t lddz;
  float* part;           // [blocks, B, S, 2, NP]: the blocks' sums of dBm, dCm
  float *pdA, *pdt, *pdD;  // [B, E, N], [B, E], [B, E]: per (b, e) parameter-gradient sums
  float* dh0;              // [B, E, N] or null
  const T* dout;           // [B, S, E]
  const float* dhT;        // [B, E, N] or null
  const float* ckpt;       // [B, chunks, E, NP]
  const T *u, *delta, *z;  // [B, S, E]; z at stride ldz
  int64_t ldz;
  const T *Bm, *Cm;
  const float *dt_bias, *A_log, *D;
  const uint8_t* doc_start;
  int64_t S, E, chunks;
  int N;
  bool vec;       // kPack-channel packs for u, delta, z, dout, du, ddelta, dz
  bool ckpt_vec;  // float4 checkpoint loads
};

// The backward of channels [blockIdx.x·CB, +CB) of batch row blockIdx.y, sub-chunk by sub-chunk
// from the last, each from its checkpoint: du, ddelta, dz, the block's dBm/dCm sums, the (b, e)
// parameter-gradient sums and dh0.
template <class T, class C>
__global__ void __launch_bounds__(C::kThreads, 1)
    scan_backward_kernel(const BackwardArgs<T> p) {
  constexpr int R = C::R, Q = C::Q, K = C::kK, CB = C::kCB, NP = C::kNP, L = C::kL;
  constexpr int TE = C::kTE, VPL = C::kVPL;
  constexpr int W = C::kWarps, kThreads = C::kThreads, RW = C::kRow4, RS = C::kRedRow;
  constexpr int VW = C::kPack, kVecs = CB / VW, kPackBytes = VW * int(sizeof(T));
  constexpr int kSlots = K * kVecs, kSlotsPerThread = (kSlots + kThreads - 1) / kThreads;
  constexpr int kBC = K * NP, kBCPerThread = (kBC + kThreads - 1) / kThreads;
  static_assert(kThreads % kVecs == 0, "a thread's packs share their channels");

  unsigned char* smem = dynamic_smem();
  float4* sScan = reinterpret_cast<float4*>(smem);  // [2][K][RW]: (Δ or +inf at a reset, Δu, dy, Δ)
  float4* sEpi = sScan + 2 * K * RW;  // [2][K][RW]: (u, softplus'(x), dout·silu'(z), -)
  float4* sOut = sEpi + 2 * K * RW;   // [2][K][RW]: (du, ddelta, dz, -)
  float* sB = reinterpret_cast<float*>(sOut + 2 * K * RW);  // [2][K][NP]
  float* sC = sB + 2 * K * NP;                              // [2][K][NP]
  float* sRed = sC + 2 * K * NP;       // [2][W][K][RS]: each warp's dBm, dCm sums (2·NP used)
  float* sCk = sRed + 2 * W * K * RS;      // [2][CB][NP]: checkpoints as loaded
  float* sDt = sCk + 2 * CB * NP;          // [CB]: dt_bias
  T* sRaw = reinterpret_cast<T*>(sDt + CB);  // [2][4][K][CB]: u, delta, z, dout as loaded

  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int r = lane % R, slot = lane / R, ch = warp * L + slot;
  const int64_t S = p.S, E = p.E, b = blockIdx.y, e0 = int64_t(blockIdx.x) * CB, e = e0 + ch;
  const int64_t B = gridDim.y;
  const int N = p.N;
  const bool active = e < E;
  const int chs = swz(ch);  // this lane's channel in the shared per-(t, e) arrays

  float A2[Q], g[Q], dA[Q] = {};  // A·log2 e; dL/dh; Σ_t Δ·g·a·h
  init_states(A2, g, p.A_log, p.dhT, b, e, E, N, r, active);
  const float De = active ? p.D[e] : 0.f;
  float ddt_sum = 0.f, dD_sum = 0.f;  // over the tokens whose epilogue this lane does
  for (int k = tid; k < CB; k += kThreads) sDt[k] = e0 + k < E ? p.dt_bias[e0 + k] : 0.f;

  const int cv = tid % kVecs;
  const int64_t ev = e0 + int64_t(cv) * VW;
  uint8_t rf[kSlotsPerThread];
  T rb[kBCPerThread], rc[kBCPerThread];
  const float* ck_lane = p.ckpt + (b * p.chunks * E + e) * NP + Q * r;  // + c·E·NP

  // The loads of sub-chunk c (see the forward), and this lane's checkpoint into sCk[c & 1].
  const auto prefetch = [&](int64_t c) {
    const int64_t t0 = c * K;
    const int rbuf = int(c & 1);
#pragma unroll
    for (int m = 0; m < kSlotsPerThread; ++m) {
      const int v = tid + m * kThreads;
      if (kSlots % kThreads != 0 && v >= kSlots) break;
      const int j = v / kVecs;
      const int64_t t = t0 + j, row = b * S + t;
      rf[m] = p.doc_start && t < S ? p.doc_start[row] : uint8_t(0);
      if (p.vec) {
        const bool ok = valid_count(t, S, ev, E, VW) == VW;
        T* dst = sRaw + (rbuf * 4 * K + j) * CB + cv * VW;
        copy_async<kPackBytes>(dst, ok ? p.u + row * E + ev : p.u, ok);
        copy_async<kPackBytes>(dst + K * CB, ok ? p.delta + row * E + ev : p.delta, ok);
        copy_async<kPackBytes>(dst + 2 * K * CB, ok ? p.z + row * p.ldz + ev : p.z, ok);
        copy_async<kPackBytes>(dst + 3 * K * CB, ok ? p.dout + row * E + ev : p.dout, ok);
      }
    }
    if (p.ckpt_vec)
      copy_async<4 * Q>(sCk + (rbuf * CB + ch) * NP + Q * r, active ? ck_lane + c * E * NP : p.ckpt,
                   active);
    copy_commit();
    load_bc<T, K, NP, kThreads>(rb, rc, p.Bm, p.Cm, b, S, N, t0, tid);
  };

  const auto stage = [&](int64_t c, int buf) {
    const int64_t t0 = c * K;
    copy_wait();
#pragma unroll
    for (int m = 0; m < kSlotsPerThread; ++m) {
      const int v = tid + m * kThreads;
      if (kSlots % kThreads != 0 && v >= kSlots) break;
      const int j = v / kVecs;
      const int64_t t = t0 + j, row = b * S + t;
      const int valid = valid_count(t, S, ev, E, VW);
      const T* raw = sRaw + (buf * 4 * K + j) * CB + cv * VW;
      const auto packed = [&](int tensor, const T* src, int64_t i) {
        return p.vec ? *reinterpret_cast<const Pack<T, VW>*>(raw + tensor * K * CB)
                     : load_pack<T, VW>(src, i, valid, false);
      };
      const Pack<T, VW> pu = packed(0, p.u, row * E + ev), pd = packed(1, p.delta, row * E + ev);
      const Pack<T, VW> pz = packed(2, p.z, row * p.ldz + ev), pg = packed(3, p.dout, row * E + ev);
      float dtb[VW];  // dt_bias of the pack's channels
      load_floats<VW>(dtb, sDt + cv * VW);
      float4* scan = sScan + (buf * K + j) * RW;
      float4* epi = sEpi + (buf * K + j) * RW;
#pragma unroll
      for (int w = 0; w < VW; ++w) {
        const float x = to_float(pd.v[w]) + dtb[w];
        const float ex = exp_of<T>(x);
        const float dt = softplus_of(x, ex);
        const float spg = x > 20.f ? 1.f : ex * rcp<T>(1.f + ex);  // softplus'(x) = σ(x)
        const float uu = to_float(pu.v[w]), zz = to_float(pz.v[w]), go = to_float(pg.v[w]);
        const float sg = sigmoid_of<T>(zz);
        const float sgrad = sg * fmaf(zz, 1.f - sg, 1.f);  // silu'(z)
        const int at = swz(cv * VW + w);
        if (w < valid) {
          scan[at] = make_float4(rf[m] ? INFINITY : dt, dt * uu, go * (zz * sg), dt);
          epi[at] = make_float4(uu, spg, go * sgrad, 0.f);
        } else {  // padding: no input, no gradient
          scan[at] = make_float4(0.f, 0.f, 0.f, 0.f);
          epi[at] = make_float4(0.f, 0.f, 0.f, 0.f);
        }
      }
    }
    stage_bc<T, K, NP, kThreads>(sB + buf * K * NP, sC + buf * K * NP, rb, rc, tid);
  };

  // du, ddelta, dz of sub-chunk c, and the block's dBm/dCm sums of its tokens (warps added in
  // order), from buffer buf.
  const auto store = [&](int64_t c, int buf) {
    const int64_t t0 = c * K;
#pragma unroll
    for (int m = 0; m < kSlotsPerThread; ++m) {
      const int v = tid + m * kThreads;
      if (kSlots % kThreads != 0 && v >= kSlots) break;
      const int j = v / kVecs;
      const int64_t t = t0 + j, row = b * S + t;
      const int valid = valid_count(t, S, ev, E, VW);
      if (valid == 0) continue;
      Pack<T, VW> odu, odd, odz;
#pragma unroll
      for (int w = 0; w < VW; ++w) {
        const float4 o = sOut[(buf * K + j) * RW + swz(cv * VW + w)];
        odu.v[w] = from_float<T>(o.x);
        odd.v[w] = from_float<T>(o.y);
        odz.v[w] = from_float<T>(o.z);
      }
      store_pack<T, VW>(p.du, row * E + ev, odu, valid, p.vec);
      store_pack<T, VW>(p.ddelta, row * E + ev, odd, valid, p.vec);
      store_pack<T, VW>(p.dz, row * p.lddz + ev, odz, valid, p.vec);
    }
    for (int k = tid; k < K * 2 * NP; k += kThreads) {
      const int j = k / (2 * NP), q = k % (2 * NP);
      const int64_t t = t0 + j;
      if (t < S && q % NP < N) {
        float sum = 0.f;
#pragma unroll
        for (int w = 0; w < W; ++w) sum += sRed[((buf * W + w) * K + j) * RS + q];
        p.part[((int64_t(blockIdx.x) * B + b) * S + t) * 2 * NP + q] = sum;
      }
    }
  };

  const int64_t chunks = p.chunks;
  __syncthreads();  // sDt
  if (chunks > 0) prefetch(chunks - 1);
  for (int64_t it = 0; it < chunks; ++it) {
    const int64_t c = chunks - 1 - it;
    const int buf = int(c & 1);  // every double buffer alternates with c
    stage(c, buf);
    float h[Q];  // the state entering sub-chunk c
    if (p.ckpt_vec) {
      load_floats<Q>(h, sCk + (buf * CB + ch) * NP + Q * r);
    } else {
#pragma unroll
      for (int i = 0; i < Q; ++i) h[i] = active ? ck_lane[c * E * NP + i] : 0.f;
    }
    if (c > 0) prefetch(c - 1);
    __syncthreads();  // buffer buf staged; outputs and sums of sub-chunk c + 1 complete
    if (it > 0) store(c + 1, buf ^ 1);

    // The sub-chunk's forward from its checkpoint: a[j] = exp(Δ_j·A), hp[j] = h_{j−1}.
    float a[K][Q], hp[K][Q];
    float ybuf[R], ebuf[Q * TE], sbuf[2 * R];
    float* red = sRed + (buf * W + warp) * K * RS;  // [K][RS] of this warp: dBm [NP], dCm [NP]
#pragma unroll
    for (int j = 0; j < K; ++j) {
      const float4 sc = sScan[(buf * K + j) * RW + chs];  // Δe, Δu, dy, Δ
      float Bs[Q], Cs[Q];
      load_floats<Q>(Bs, sB + (buf * K + j) * NP + Q * r);
      load_floats<Q>(Cs, sC + (buf * K + j) * NP + Q * r);
#pragma unroll
      for (int i = 0; i < Q; ++i) {
        a[j][i] = ex2<T>(sc.x * A2[i]);
        hp[j][i] = h[i];
        h[i] = fmaf(a[j][i], h[i], sc.y * Bs[i]);
        ebuf[(j % TE) * Q + i] = sc.z * h[i];  // dCm term dy·h
      }
      ybuf[j % R] = dot_states<Q>(Cs, h);
      if (j % TE == TE - 1) {  // slot q ends with the warp's sums for (token, state) pairs
        transposed_sum<Q * TE, L, R>(ebuf, lane);  // VPL·q + m = token_in_group·Q + state
        store_pair_sums<VPL, Q>(red + (j - (TE - 1)) * RS + NP + Q * r, ebuf, slot, RS);
      }
      if (j % R == R - 1) {  // lane r: token jj's y, so its dz and dD term
        transposed_sum<R, R, 1>(ybuf, lane);
        const int jj = j - (R - 1) + r;
        const float4 s = sScan[(buf * K + jj) * RW + chs];
        const float4 ep = sEpi[(buf * K + jj) * RW + chs];
        sOut[(buf * K + jj) * RW + chs].z = ep.z * fmaf(De, ep.x, ybuf[0]);
        dD_sum = fmaf(s.z, ep.x, dD_sum);
      }
    }

    // The reverse recurrence over the sub-chunk.
#pragma unroll
    for (int j = K - 1; j >= 0; --j) {
      const float4 sc = sScan[(buf * K + j) * RW + chs];
      float Bs[Q], Cs[Q];
      load_floats<Q>(Bs, sB + (buf * K + j) * NP + Q * r);
      load_floats<Q>(Cs, sC + (buf * K + j) * NP + Q * r);
      float s1 = 0.f, s2 = 0.f;  // Σ g·B, Σ A·log2e·g·a·h over this lane's states
#pragma unroll
      for (int i = 0; i < Q; ++i) {
        g[i] = fmaf(sc.z, Cs[i], g[i]);      // dL/dh_j
        s1 = fmaf(g[i], Bs[i], s1);
        ebuf[(j % TE) * Q + i] = g[i] * sc.y;  // dBm term g·Δ·u
        g[i] *= a[j][i];                     // dL/dh_{j−1}
        const float gah = g[i] * hp[j][i];   // g·a·h_{j−1}
        s2 = fmaf(A2[i], gah, s2);
        dA[i] = fmaf(sc.w, gah, dA[i]);
      }
      sbuf[2 * (j % R)] = s1;
      sbuf[2 * (j % R) + 1] = s2;
      if (j % TE == 0) {
        transposed_sum<Q * TE, L, R>(ebuf, lane);
        store_pair_sums<VPL, Q>(red + j * RS + Q * r, ebuf, slot, RS);
      }
      if (j % R == 0) {  // lane r: token j + r's sums, so its du, ddelta
        transposed_sum<2 * R, R, 1>(sbuf, lane);
        const int jj = j + r;
        const float4 s = sScan[(buf * K + jj) * RW + chs];
        const float4 ep = sEpi[(buf * K + jj) * RW + chs];
        const float ddl = fmaf(ep.x, sbuf[0], sbuf[1] * kLn2) * ep.y;  // (u·Σg·B + Σ A·g·a·h)·σ
        float4& o = sOut[(buf * K + jj) * RW + chs];
        o.x = fmaf(s.w, sbuf[0], s.z * De);  // Δ·Σ g·B + dy·D
        o.y = ddl;
        ddt_sum += ddl;
      }
    }
  }
  if (chunks > 0) {
    __syncthreads();
    store(0, 0);
  }

  // What is left in g flowed into h0; the lanes of a channel add their token sums in a fixed order.
#pragma unroll
  for (int off = R / 2; off >= 1; off /= 2) {
    ddt_sum += __shfl_xor_sync(0xffffffffu, ddt_sum, off);
    dD_sum += __shfl_xor_sync(0xffffffffu, dD_sum, off);
  }
  if (active) {
#pragma unroll
    for (int i = 0; i < Q; ++i) {
      const int n = Q * r + i;
      if (n < N) {
        if (p.dh0) p.dh0[(b * E + e) * N + n] = g[i];
        p.pdA[(b * E + e) * N + n] = dA[i];
      }
    }
    if (r == 0) {
      p.pdt[b * E + e] = ddt_sum;
      p.pdD[b * E + e] = dD_sum;
    }
  }
}

// The fixed-order sums: dBm / dCm [B, S, N] (=) from the blocks' sums part [blocks, B, S, 2, NP]
// in block order (threads [0, B·S·N)); ddt_bias [E], dA_log [E, N], dD [E] (+=) from the (b, e)
// sums in batch order (the next max(E·N, E) threads).
template <class T>
__global__ void scan_finish_kernel(T* __restrict__ dBm, T* __restrict__ dCm,
                              const float* __restrict__ part, int64_t blocks, int64_t B,
                              int64_t S, int N, int NP, float* __restrict__ ddt_bias,
                              float* __restrict__ dA_log, float* __restrict__ dD,
                              const float* __restrict__ pdA, const float* __restrict__ pdt,
                              const float* __restrict__ pdD, const float* __restrict__ A_log,
                              int64_t E) {
  int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t bsn = B * S * N;
  if (i < bsn) {
    const int64_t bt = i / N;
    const int n = int(i % N);
    float sB = 0.f, sC = 0.f;
    for (int64_t k = 0; k < blocks; ++k) {
      const float* row = part + (k * B * S + bt) * 2 * NP;
      sB += row[n];
      sC += row[NP + n];
    }
    dBm[i] = from_float<T>(sB);
    dCm[i] = from_float<T>(sC);
    return;
  }
  i -= bsn;
  if (i < E * N) {
    float s = 0.f;
    for (int64_t b = 0; b < B; ++b) s += pdA[b * E * N + i];
    dA_log[i] += s * -expf(A_log[i]);  // A = −exp(A_log), so dA/dA_log = A
  }
  if (i < E) {
    float st = 0.f, sd = 0.f;
    for (int64_t b = 0; b < B; ++b) {
      st += pdt[b * E + i];
      sd += pdD[b * E + i];
    }
    ddt_bias[i] += st;
    dD[i] += sd;
  }
}

// ---- launchers ----

void check_shape(const char* op, const ScanShape& s) {
  if (s.B < 0 || s.S < 0 || s.E < 0) fail(op, ": negative size B=", s.B, " S=", s.S, " E=", s.E);
  if (s.N < 0 || s.N > kMaxStateN)
    fail(op, ": state size N=", s.N, " is outside the supported 0..", kMaxStateN);
  if (s.B > 65535) fail(op, ": batch B=", s.B, " is above the supported 65535");
}

void check_stride(const char* op, const char* name, int64_t ld, int64_t E) {
  if (ld < E) fail(op, ": ", name, "=", ld, " is below the channel count E=", E);
}


// The sizes that depend on the lane layout (from N).
struct Geometry {
  int K, NP, CB, threads, pack;
  int64_t chunks, blocks;  // sub-chunks per row; blocks per batch row
  size_t fwd_smem, bwd_smem;
};

// elem: sizeof(T), which only the shared-memory sizes depend on.
Geometry geometry(const ScanShape& s, size_t elem = sizeof(float)) {
  Geometry g{};
  with_layout(s.N, [&](auto cfg) {
    using C = decltype(cfg);
    const bool f32 = elem == sizeof(float);
    g = {C::kK,
         C::kNP,
         C::kCB,
         C::kThreads,
         C::kPack,
         (s.S + C::kK - 1) / C::kK,
         (s.E + C::kCB - 1) / C::kCB,
         f32 ? C::template kFwdSmem<float> : C::template kFwdSmem<bf16>,
         f32 ? C::template kBwdSmem<float> : C::template kBwdSmem<bf16>};
  });
  return g;
}

int64_t round4(int64_t n) { return (n + 3) / 4 * 4; }

// The backward's workspace, carved in this order (each part a multiple of 4 floats, so the
// checkpoints stay 16-byte aligned when the base is).
struct Workspace {
  float* ckpt;  // [B, chunks, E, NP]: used when the caller has no checkpoints
  float* part;  // [blocks, B, S, 2, NP]
  float* pdA;   // [B, E, N]
  float* pdt;   // [B, E]
  float* pdD;   // [B, E]
  int64_t total;

  Workspace(const ScanShape& s, const Geometry& g, float* base) {
    int64_t off = 0;
    const auto take = [&](int64_t n) {
      float* q = base ? base + off : nullptr;
      off += round4(n);
      return q;
    };
    ckpt = take(s.B * g.chunks * s.E * g.NP);
    part = take(g.blocks * s.B * s.S * 2 * g.NP);
    pdA = take(s.B * s.E * s.N);
    pdt = take(s.B * s.E);
    pdD = take(s.B * s.E);
    total = off;
  }
};

// Launches kernel over blocks x B with g.threads threads and `smem` bytes of shared memory.
template <class Kernel, class Args>
void launch(Kernel kernel, const Args& a, const Geometry& g, size_t smem, int64_t B,
            cudaStream_t stream) {
  allow_smem(kernel, smem);
  kernel<<<dim3(unsigned(g.blocks), unsigned(B)), g.threads, smem, stream>>>(a);
  HYMBA_CUDA_CHECK_LAUNCH();
}

template <class T>
void launch_forward(const ForwardArgs<T>& a, const Geometry& g, int64_t N, int64_t B,
                    cudaStream_t stream) {
  with_layout(N, [&](auto cfg) {
    using C = decltype(cfg);
    launch(a.out ? scan_forward_kernel<T, C, true> : scan_forward_kernel<T, C, false>, a, g,
           g.fwd_smem, B, stream);
  });
}

template <class T>
ForwardArgs<T> forward_args(T* out, float* hT, float* ckpt, const ScanInputs<T>& in,
                            const ScanShape& s, const Geometry& g) {
  // Without output, z is not read: its alignment does not matter.
  const bool vec = out ? packs_fit<T>(g.pack, s.E, {in.ldz}, {in.u, in.delta, out, in.z})
                       : packs_fit<T>(g.pack, s.E, {}, {in.u, in.delta});
  return {out,       hT,         ckpt,  in.u,  in.delta, in.z, in.ldz,   in.Bm,
          in.Cm,     in.dt_bias, in.A_log, in.D, in.h0,    in.doc_start,
          s.S,       s.E,        g.chunks, int(s.N), vec, aligned(ckpt, 16)};
}

}  // namespace

int64_t selective_scan_checkpoint_floats(const ScanShape& s) {
  check_shape("selective_scan_checkpoint_floats", s);
  const Geometry g = geometry(s);
  return s.B * g.chunks * s.E * g.NP;
}

template <class T>
void selective_scan_forward(T* out, float* hT, float* checkpoints, const ScanInputs<T>& in,
                            const ScanShape& s, cudaStream_t stream) {
  check_shape("selective_scan_forward", s);
  check_stride("selective_scan_forward", "ldz", in.ldz, s.E);
  if (s.B == 0 || s.E == 0) return;  // nothing to write (hT is [B, 0, N] or empty)
  const Geometry g = geometry(s, sizeof(T));
  launch_forward<T>(forward_args(out, hT, checkpoints, in, s, g), g, s.N, s.B, stream);
}

int64_t selective_scan_backward_workspace(const ScanShape& s) {
  check_shape("selective_scan_backward_workspace", s);
  return Workspace(s, geometry(s), nullptr).total;
}

template <class T>
void selective_scan_backward(const ScanGrads<T>& gr, const T* dout, const float* dhT,
                             const ScanInputs<T>& in, const float* checkpoints,
                             const ScanShape& s, float* workspace, cudaStream_t stream) {
  const char* op = "selective_scan_backward";
  check_shape(op, s);
  check_stride(op, "ldz", in.ldz, s.E);
  check_stride(op, "lddz", gr.lddz, s.E);
  if (s.B == 0) return;  // nothing to write, nothing to add
  if (s.E == 0) {
    // dBm and dCm are sums over no channels; zero bits are 0 in float and bf16 alike.
    if (s.S > 0 && s.N > 0) {
      const size_t bytes = size_t(s.B * s.S * s.N) * sizeof(T);
      HYMBA_CUDA_CHECK(cudaMemsetAsync(gr.dBm, 0, bytes, stream));
      HYMBA_CUDA_CHECK(cudaMemsetAsync(gr.dCm, 0, bytes, stream));
    }
    return;
  }
  const Geometry g = geometry(s, sizeof(T));
  const Workspace ws(s, g, workspace);
  const float* ckpt = checkpoints;
  if (!ckpt) {  // the forward kernel without output: the same states as the forward's
    launch_forward<T>(forward_args<T>(nullptr, nullptr, ws.ckpt, in, s, g), g, s.N, s.B, stream);
    ckpt = ws.ckpt;
  }
  const bool vec = packs_fit<T>(g.pack, s.E, {in.ldz, gr.lddz},
                                {in.u, in.delta, in.z, dout, gr.du, gr.ddelta, gr.dz});
  const BackwardArgs<T> a{gr.du,   gr.ddelta, gr.dz,     gr.lddz,  ws.part,      ws.pdA,
                          ws.pdt,  ws.pdD,    gr.dh0,    dout,     dhT,          ckpt,
                          in.u,    in.delta,  in.z,      in.ldz,   in.Bm,        in.Cm,
                          in.dt_bias, in.A_log, in.D,    in.doc_start, s.S,      s.E,
                          g.chunks, int(s.N), vec,       aligned(ckpt, 16)};
  with_layout(s.N, [&](auto cfg) {
    launch(scan_backward_kernel<T, decltype(cfg)>, a, g, g.bwd_smem, s.B, stream);
  });
  const int64_t threads = s.B * s.S * s.N + std::max(s.E * s.N, s.E);
  scan_finish_kernel<T><<<unsigned((threads + kFinishThreads - 1) / kFinishThreads), kFinishThreads, 0,
                     stream>>>(gr.dBm, gr.dCm, ws.part, g.blocks, s.B, s.S, int(s.N), g.NP,
                               gr.ddt_bias, gr.dA_log, gr.dD, ws.pdA, ws.pdt, ws.pdD, in.A_log,
                               s.E);
  HYMBA_CUDA_CHECK_LAUNCH();
}

#define HYMBA_INSTANTIATE_SCAN(T)                                                              \
  template void selective_scan_forward<T>(T*, float*, float*, const ScanInputs<T>&,             \
                                          const ScanShape&, cudaStream_t);                     \
  template void selective_scan_backward<T>(const ScanGrads<T>&, const T*, const float*,         \
                                           const ScanInputs<T>&, const float*, const ScanShape&, \
                                           float*, cudaStream_t);
HYMBA_INSTANTIATE_SCAN(float)
HYMBA_INSTANTIATE_SCAN(bf16)
#undef HYMBA_INSTANTIATE_SCAN

}  // namespace hymba::cuda
