// RMSNorm kernels, the fast versions (issue 8). The op is memory-bound, so the design counts bytes:
// each [rows, dim] tensor is read or written exactly once, in 16-byte pieces where it can be.
//
// Layout of a row over threads. A row of `dim` elements is cut into packs of V elements: V = 8
// bf16 or 4 floats (one 16-byte load or store) when dim, every row stride and every base pointer
// (w too) allow it, else V = 1 (the small strided norms: dt, B and C are column slices of a wider
// matrix, B and C at offsets that are not 16-byte aligned). A group of `tpr` consecutive threads
// (a power of two, 1..256) owns one row; thread t of the group holds packs t, t + tpr, ...,
// t + (P − 1)·tpr, so each load instruction of a warp covers consecutive 16-byte pieces. P, the
// packs per thread, is a template parameter so the row lives in registers: x is read from memory
// once, its sum of squares is taken over the group (warp shuffles, plus shared memory across the
// group's warps when tpr > 32), and the same registers are scaled and stored. Blocks are 256
// threads, 256/tpr rows side by side. w is read per row through the read-only path (16-byte
// loads that hit in L1: 6.4 KB a row at width 1600, touched every tile while the streamed rows
// pass through once).
//
// Forward: one row per group, a grid of rows/(256/tpr) blocks; at ≤ 64 registers 4 blocks (32
// warps) fit per SM, so 8-32 rows (~100 KB) of loads are in flight per SM. Aiming at 8 packs a
// thread: width 1600 bf16 is a warp per row (200 packs: 6 or 7 a lane, P = 8); 3200 bf16 and 1600
// fp32 two warps per row; 3200 fp32 four.
//
// Backward: dx = rstd·(w⊙dy − x̂·mean(w⊙dy⊙x̂)), x̂ = x·rstd, and dw += Σ_rows dy⊙x̂. The grid is
// persistent (no more blocks than fit on the device at once, from the occupancy API, and no more
// than the workspace holds): block b handles row tiles b, b + grid, ..., a tile being the block's
// 256/tpr rows. Each thread keeps x and dy (and the old dx when accumulating) of its row in
// registers, and its dw sums for its fixed columns across all the rows it visits (in shared memory,
// with w's columns in registers; on the staged path below in registers), so dw costs no memory
// traffic per row. With dx += in bf16 each thread also copies its packs of the
// block's next tile into shared memory (cp.async) while it computes the current one. At the end
// the block adds its groups' sums through shared memory, all its threads at once (in group order,
// or for narrow rows in slices of the groups, then the slices in order), and writes one partial
// row; a second small kernel adds the partial rows in block order (32 interleaved slices, then the
// slices in order). Deterministic: every sum has a fixed order, whatever the scheduling. Aiming at
// 4 packs a thread (32 dw sums for bf16): width
// 1600 bf16 runs 2 warps per row, 4 rows per block; 3200 bf16 and 1600 fp32 4 warps per row; 3200
// fp32 the whole block per row. Compiled for 2 blocks per SM (≤ 128 registers): 2-8 rows, 51 KB
// of x and dy, requested per SM per tile.
//
// Tensor parallelism's split norm (rmsnorm.h) is these two kernels cut at the row sum (Part): one
// half stores the group's sum (Σ x², or the backward's dot) instead of using it, the other reads
// the all-reduced sum in its place. They run only with TP > 1 and were not tuned; the whole
// norm's instantiations compile to the PTX and registers they had before the split existed.
//
// Prediction (before measuring), H100, 17,408 rows, against the ~3.0 TB/s copy bandwidth:
// - forward 2.75-2.9 TB/s (92-97%) in all four cases: one read, one write, 16-byte accesses,
//   ~100 KB of loads in flight per SM;
// - backward alone 2.6-2.8 TB/s: fewer bytes in flight (51 KB per SM at most, and a block's rows
//   wait for each other at the group sum), plus the dw partials (≤ 396 × dim floats, ≤ 5 MB,
//   mostly in L2) and the ~2 µs partial reduce;
// - forward + backward (5 tensors, 3 launches) 2.6-2.75 TB/s at widths 1600 and 3200, fp32 and
//   bf16. bf16 1600 is the likeliest to fall short: 0.107 ms at 2.6 TB/s, so the ~1 µs gaps
//   between the launches and the reduce weigh ~4%.
//
// nvcc --resource-usage, sm_90, no spills but at bf16 one-element P=32 with dx += (rows wider than
// 4096 that do not allow packs; not used by the model): 16 bytes, 4 in the split's from-dots
// half. Registers of the kernels the model uses (P = packs per thread): forward ≤ 64 (bf16 V=8
// P=8: 64, fp32 V=4 P=8: 64); backward bf16 V=8 P=4: 114 (128 with dx +=, staged), fp32 V=4 P=4:
// 90 (107), one-element P=1 to 4: 40-64.
#include "cuda/rmsnorm.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <initializer_list>
#include <type_traits>

#include "core/cuda_check.h"
#include "cuda/alignment.h"
#include "cuda/column_sum.cuh"
#include "cuda/copy_async.cuh"
#include "cuda/dtype.cuh"
#include "cuda/shared_memory.h"

namespace hymba::cuda {

namespace {

constexpr int kBlock = 256;  // threads of every norm block
constexpr int kWarps = kBlock / 32;
// Widest row supported: 256 threads × 32 packs on the one-element path. The model's widest is
// E = 3200.
constexpr int64_t kMaxDim = 8192;
// Packs per thread the layout aims for: the forward holds only x; the backward holds x, dy and
// one dw sum per element, so it spreads a row over more threads.
constexpr int kForwardPacks = 8;
constexpr int kBackwardPacks = 4;
// dw partial rows the backward may write (its workspace): at least 3 per SM of an H100, more for
// narrow rows (up to 2^18 floats = 1 MiB of partials), never more than the rows.
constexpr int64_t kMinBackwardBlocks = 3 * 132;
constexpr int64_t kPartialBudget = int64_t(1) << 18;

// ---------------------------------------------------------------------------------------------
// Device helpers.

// Sum of v over each group of tpr threads (a power of two; group g is threads [g·tpr, g·tpr +
// tpr)). Every thread of a group gets the same bits: the butterfly adds the same two values on
// both sides of each exchange, and the cross-warp step reads the same slots in the same order.
// Called by every thread of the block (it synchronises the block when tpr > 32).
__device__ float group_sum(float v, int tpr, float* scratch /* [kWarps] */) {
  for (int o = min(tpr, 32) / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (tpr <= 32) return v;
  __syncthreads();  // scratch may still be read by the previous call
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  const int first = threadIdx.x / tpr * (tpr / 32);  // the group's first warp
  float s = 0;
  for (int i = 0; i < tpr / 32; ++i) s += scratch[first + i];
  return s;
}

// One pack of V elements at p: one 16-byte load (Pack is 16-byte aligned) or one element.
template <class T, int V>
__device__ __forceinline__ Pack<T, V> load_pack(const T* p) {
  static_assert(sizeof(T) * V == 16 || V == 1, "packs are 16 bytes or one element");
  return *reinterpret_cast<const Pack<T, V>*>(p);
}

template <class T, int V>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, V>& r) {
  *reinterpret_cast<Pack<T, V>*>(p) = r;
}

// Hides r's value from the compiler (emits nothing): values it derived from r before are then not
// kept alive in registers past this point but derived again from r, so a row stays packed (4
// registers per 16 bytes, not 8 floats) while the group sum is taken.
template <class T, int V>
__device__ __forceinline__ void forget(Pack<T, V>& r) {
  if constexpr (sizeof(T) * V == 16) {
    uint4 u;
    memcpy(&u, &r, 16);
    asm volatile("" : "+r"(u.x), "+r"(u.y), "+r"(u.z), "+r"(u.w));
    memcpy(&r, &u, 16);
  } else if constexpr (sizeof(T) == 4) {
    asm volatile("" : "+f"(r.v[0]));
  } else {
    unsigned short h;
    memcpy(&h, &r, 2);
    asm volatile("" : "+h"(h));
    memcpy(&r, &h, 2);
  }
}

// The same for a pointer: loads through it after this point are not merged with earlier ones.
template <class P>
__device__ __forceinline__ P* forget(P* p) {
  asm volatile("" : "+l"(p));
  return p;
}

// w[0, V) into registers through the read-only cache (16-byte loads: w is 16-byte aligned on the
// vector path, and V is a multiple of 4 there).
template <int V>
__device__ __forceinline__ void load_w(float (&out)[V], const float* w) {
  if constexpr (V == 1) {
    out[0] = __ldg(w);
  } else {
#pragma unroll
    for (int i = 0; i < V / 4; ++i) {
      const float4 q = __ldg(reinterpret_cast<const float4*>(w) + i);
      out[4 * i] = q.x, out[4 * i + 1] = q.y, out[4 * i + 2] = q.z, out[4 * i + 3] = q.w;
    }
  }
}

// V consecutive floats of shared memory, in 16-byte accesses where V is a multiple of 4 (p then
// 16-byte aligned).
template <int V>
__device__ __forceinline__ void load_floats(float (&out)[V], const float* p) {
#pragma unroll
  for (int i = 0; i < V; i += (V % 4 == 0 ? 4 : 1)) {
    if constexpr (V % 4 == 0) {
      const float4 q = *reinterpret_cast<const float4*>(p + i);
      out[i] = q.x, out[i + 1] = q.y, out[i + 2] = q.z, out[i + 3] = q.w;
    } else {
      out[i] = p[i];
    }
  }
}

template <int V>
__device__ __forceinline__ void store_floats(float* p, const float (&v)[V]) {
#pragma unroll
  for (int i = 0; i < V; i += (V % 4 == 0 ? 4 : 1)) {
    if constexpr (V % 4 == 0) {
      *reinterpret_cast<float4*>(p + i) = make_float4(v[i], v[i + 1], v[i + 2], v[i + 3]);
    } else {
      p[i] = v[i];
    }
  }
}

// Programmatic dependent launch (Hopper): a kernel launched with programmatic stream serialization
// may start once every block of the kernel before it has called let_dependents_start (or exited),
// and waits in wait_for_primary until that kernel has finished and its writes are visible; so its
// launch and block scheduling overlap the end of the kernel before. Both are no-ops otherwise.
__device__ __forceinline__ void let_dependents_start() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void wait_for_primary() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// ---------------------------------------------------------------------------------------------
// Kernels. tpr: threads per row; P: packs per thread; a thread holds columns (k·tpr + t)·V + j,
// k < P, j < V, of its row (those below dim).
//
// Each kernel also runs one half of the split norm of tensor parallelism (rmsnorm.h), picked by
// kPart at compile time, so the halves share its layout and arithmetic: with one rank (dim ==
// full_dim) the halves add the same values in the same order as the whole norm and give its
// bits, and the whole norm's code is the one it always was (`if constexpr` drops the rest).
enum class Part {
  whole,           // the norm of whole rows: the row statistic is summed here over the group
  statistic,       // only the row statistic (Σ x² forward, Σ (w⊙dy)⊙x̂ backward) → split.out[row]
  from_statistic,  // the rest, from the whole row's statistic split.in[row] (over split.full_dim)
};

// What a half of the split norm exchanges: the row statistics [rows] it writes (Part::statistic)
// or reads (Part::from_statistic), and the whole row's length. The last kernel parameter, so the
// whole norm's kernels keep their parameter layout (and their code: same PTX, same registers).
struct Split {
  float* out = nullptr;
  const float* in = nullptr;
  int full_dim = 0;
};

// rstd [rows] (written, but by Part::statistic); split.in may alias rstd (every thread of the
// block has read it before rstd is written). kAverage: y = (y + norm) · 0.5, the norm rounded to T
// first, as the fusion average of two separately stored norms rounds (the same bits).
template <class T, int V, int P, Part kPart, bool kAverage>
__global__ void __launch_bounds__(kBlock)
    rmsnorm_forward_kernel(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx, const float* w, int64_t rows,
                   int dim, int tpr, float eps, Split split) {
  __shared__ float scratch[kWarps];
  const int t = threadIdx.x & (tpr - 1);
  const int64_t row = int64_t(blockIdx.x) * (kBlock / tpr) + threadIdx.x / tpr;
  const bool live = row < rows;  // a dead group still takes part in group_sum
  const T* xr = x + row * ldx;   // [dim]
  T* yr = y + row * ldy;         // [dim]

  Pack<T, V> xv[P];  // this thread's packs of the row (those below dim)
#pragma unroll
  for (int k = 0; k < P; ++k) {
    const int col = (k * tpr + t) * V;
    if (live && col < dim) xv[k] = load_pack<T, V>(xr + col);
  }
  float total;  // Σ x² over the whole row
  if constexpr (kPart == Part::from_statistic) {
    total = live ? split.in[row] : 0.f;
    __syncthreads();  // read by every thread before t == 0 writes rstd, which may alias split.in
  } else {
    float ss = 0;
#pragma unroll
    for (int k = 0; k < P; ++k) {
      if (live && (k * tpr + t) * V < dim) {
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const float v = to_float(xv[k].v[j]);
          ss += v * v;
        }
      }
    }
#pragma unroll
    for (int k = 0; k < P; ++k) forget(xv[k]);
    total = group_sum(ss, tpr, scratch);
  }
  if constexpr (kPart == Part::statistic) {
    if (live && t == 0) split.out[row] = total;
    return;
  }
  const float rs = rsqrtf(total / float(kPart == Part::whole ? dim : split.full_dim) + eps);
  if (live && t == 0) rstd[row] = rs;
#pragma unroll
  for (int k = 0; k < P; ++k) {
    const int col = (k * tpr + t) * V;
    if (live && col < dim) {
      float wv[V];
      load_w<V>(wv, w + col);
      Pack<T, V> out;
#pragma unroll
      for (int j = 0; j < V; ++j) out.v[j] = from_float<T>(wv[j] * (to_float(xv[k].v[j]) * rs));
      if constexpr (kAverage) {
        const Pack<T, V> other = load_pack<T, V>(yr + col);
#pragma unroll
        for (int j = 0; j < V; ++j) {  // __fadd_rn: never contracted with the norm's product (fp32)
          out.v[j] = from_float<T>(__fadd_rn(to_float(other.v[j]), to_float(out.v[j])) * 0.5f);
        }
      }
      store_pack<T, V>(yr + col, out);
    }
  }
}

// Blocks per SM the backward kernel is compiled for: 2 (at most 128 registers a thread) at up to
// 4 packs a thread, the layout every row up to 1024 packs gets (all the model's norms), so the
// persistent grid keeps two blocks' tiles per SM in flight; wider rows leave the registers to ptxas.
constexpr int backward_min_blocks(int P) { return P <= 4 ? 2 : 1; }

// Whether the backward stages its rows through shared memory (below): with dx += in bf16, on the
// 16-byte pack path (cp.async copies 16 bytes). There the register path holds x, dy and the old dx
// at the 128-register cap of two blocks an SM, and ran at 65% of a copy of its bytes (bench-rmsnorm,
// width 1600); staged, 75%. Elsewhere staging measured 1-6% slower (docs/PERF.md), so the other
// kernels load each tile into registers as it begins.
template <class T, int V, bool kAccumulate>
constexpr bool kStagedBackward = kAccumulate && std::is_same_v<T, bf16> && sizeof(T) * V == 16;

// Where a backward thread keeps, across the tiles it visits, its dw sums and its columns of w. On
// the staged path shared memory holds the staging buffers, so the sums are registers and w is read
// again (through L1) at each of its two uses a row. Elsewhere the sums live in shared memory from
// the start, in the layout the end-of-block sum reads them from, and w's columns take the registers
// that frees, loaded once: as many registers, under a third of the L1 traffic (616 -> 183 MB a
// launch at bf16 width 1600, ncu) and 2-3% off the bf16 backward (docs/PERF.md). The sums are added
// in the same order either way, so the bits do not depend on where they live. (Part::statistic
// has no sums and reads w at its one use.)
template <class T, int V, bool kAccumulate>
constexpr bool kSumsInRegisters = kStagedBackward<T, V, kAccumulate>;

// Dynamic shared memory of a backward block: on the staged path two tiles of the three tensors it
// reads (x, dy, the old dx), each thread's P packs of each; the dw sums [P, kBlock, V] floats
// (from the start, or on the staged path at the end, reusing the staging bytes).
template <class T, int V, int P, bool kAccumulate, Part kPart>
constexpr size_t backward_smem_bytes() {
  const size_t staging = kStagedBackward<T, V, kAccumulate> ? 2 * 3 * size_t(P) * kBlock * 16 : 0;
  const size_t sums = kPart != Part::statistic ? size_t(P) * kBlock * V * sizeof(float) : 0;
  return staging > sums ? staging : sums;
}

// Persistent: block b handles row tiles b, b + gridDim.x, ... (a tile is kBlock/tpr rows, one per
// group) and writes its dw partial sums to partial[b, :], but for Part::statistic, which writes
// the rows' dots Σ (w⊙dy)⊙x̂ to split.out and touches neither dx nor dw. On the staged path each
// thread copies its packs of the block's next tile global -> shared (cp.async) before it computes
// the current one, so the next tile's loads are in flight while this one is reduced and stored.
// No barrier guards the buffers: a thread reads back only its own copies.
template <class T, int V, int P, bool kAccumulate, Part kPart>
__global__ void __launch_bounds__(kBlock, backward_min_blocks(P))
    rmsnorm_backward_kernel(T* dx, int64_t lddx, float* partial, const T* dy, int64_t lddy, const T* x, int64_t ldx,
                    const float* w, const float* rstd, int64_t rows, int dim, int tpr, Split split) {
  static_assert(kPart != Part::statistic || !kAccumulate, "the dots kernel writes no dx");
  constexpr bool kDots = kPart != Part::from_statistic;  // the row dot is taken here
  constexpr bool kGrads = kPart != Part::statistic;      // dx and the dw sums are
  constexpr bool kStaged = kStagedBackward<T, V, kAccumulate>;
  constexpr bool kRegisterSums = kSumsInRegisters<T, V, kAccumulate>;
  constexpr bool kRegisterW = kGrads && !kRegisterSums;  // w takes the registers the sums left
  extern __shared__ __align__(16) unsigned char smem[];  // backward_smem_bytes()
  Pack<T, V>* staged = reinterpret_cast<Pack<T, V>*>(smem);  // [2][3][P][kBlock]: x, dy, old dx
  float* sums = reinterpret_cast<float*>(smem);  // [P, kBlock, V]: every thread's dw sums
  const auto own_sums = [&](int k) { return sums + (k * kBlock + threadIdx.x) * V; };  // pack k's
  __shared__ float scratch[kWarps];
  __shared__ float slices[kGrads ? kBlock : 1];  // [S, P·C]: narrow rows' slice sums (below)
  const int t = threadIdx.x & (tpr - 1), groups = kBlock / tpr;
  const int64_t tiles = (rows + groups - 1) / groups;
  const auto slot = [&](int buf, int tensor, int k) {  // this thread's pack k of a tensor
    return staged + ((buf * 3 + tensor) * P + k) * kBlock + threadIdx.x;
  };
  // Staged path only: copies this thread's packs of tile `tile` (none past the last) into buffer
  // buf; one commit either way, so the wait below always leaves exactly the newest group in flight.
  const auto prefetch = [&](int64_t tile, int buf) {
    const int64_t row = tile * groups + threadIdx.x / tpr;
    if (tile < tiles) {
      const bool live = row < rows;  // a dead row's packs are zero-filled, never read
#pragma unroll
      for (int k = 0; k < P; ++k) {
        const int col = (k * tpr + t) * V;
        if (col < dim) {
          copy_async<16>(slot(buf, 0, k), live ? x + row * ldx + col : x, live);
          copy_async<16>(slot(buf, 1, k), live ? dy + row * lddy + col : dy, live);
          copy_async<16>(slot(buf, 2, k), live ? dx + row * lddx + col : dx, live);
        }
      }
    }
    copy_commit();
  };

  // Σ dy·x̂ over this thread's rows for its columns: acc, or sums[k, threadIdx.x, :] (thread-private
  // until the end-of-block sum). w of its columns: wr, or read at each use.
  float acc[kRegisterSums ? P : 1][V], wr[kRegisterW ? P : 1][V];
#pragma unroll
  for (int k = 0; k < P; ++k) {
    const int col = (k * tpr + t) * V;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      if constexpr (kRegisterSums) {
        acc[k][j] = 0;
      } else if constexpr (kGrads) {
        own_sums(k)[j] = 0;
      }
    }
    if constexpr (kRegisterW) {
      if (col < dim) load_w<V>(wr[k], w + col);
    }
  }
  // w[col, col + V) for pack k, from registers or through L1.
  const auto w_of = [&](float(&out)[V], int k, const float* from) {
    if constexpr (kRegisterW) {
#pragma unroll
      for (int j = 0; j < V; ++j) out[j] = wr[k][j];
    } else {
      load_w<V>(out, from + (k * tpr + t) * V);
    }
  };

  if constexpr (kStaged) prefetch(blockIdx.x, 0);
  for (int64_t tile = blockIdx.x, i = 0; tile < tiles; tile += gridDim.x, ++i) {  // uniform over the block
    const int buf = int(i & 1);  // the staging buffer holding this tile
    if constexpr (kStaged) {
      prefetch(tile + gridDim.x, buf ^ 1);
      copy_wait_prior<1>();  // this tile's copies have landed
    }
    const int64_t row = tile * groups + threadIdx.x / tpr;
    const bool live = row < rows;  // a dead group still takes part in group_sum
    const T* xr = x + row * ldx;     // [dim]
    const T* dyr = dy + row * lddy;  // [dim]
    T* dxr = dx + row * lddx;        // [dim]

    // All of the row's packs first (from the staging buffer, or loaded here so they are in
    // flight together).
    Pack<T, V> xv[P], gv[P], ov[kAccumulate ? P : 1];  // x, dy, the dx added to (below dim)
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const int col = (k * tpr + t) * V;
      if (live && col < dim) {
        if constexpr (kStaged) {
          xv[k] = *slot(buf, 0, k);
          gv[k] = *slot(buf, 1, k);
          ov[k] = *slot(buf, 2, k);
        } else {
          xv[k] = load_pack<T, V>(xr + col);
          gv[k] = load_pack<T, V>(dyr + col);
          if constexpr (kAccumulate) ov[k] = load_pack<T, V>(dxr + col);
        }
      }
    }
    const float rs = live ? rstd[row] : 0.f;

    // Per element one product g·x serves both sums (x̂ = x·rs): the dot takes rs once at the end,
    // the dw sums take it in their FMA.
    float dot = 0;  // Σ (w⊙dy) ⊙ x over this thread's part of the row (· rs below)
#pragma unroll
    for (int k = 0; k < P; ++k) {
      const int col = (k * tpr + t) * V;
      if (live && col < dim) {
        float wv[V], sv[V];  // w; the sums, where they are in shared memory
        if constexpr (kDots) w_of(wv, k, w);
        if constexpr (kGrads && !kRegisterSums) load_floats<V>(sv, own_sums(k));
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const float gx = to_float(gv[k].v[j]) * to_float(xv[k].v[j]);
          if constexpr (kDots) dot = fmaf(wv[j], gx, dot);
          if constexpr (kGrads && kRegisterSums) {
            acc[k][j] = fmaf(gx, rs, acc[k][j]);
          } else if constexpr (kGrads) {
            sv[j] = fmaf(gx, rs, sv[j]);
          }
        }
        if constexpr (kGrads && !kRegisterSums) store_floats<V>(own_sums(k), sv);
      }
    }
    dot *= rs;
    if constexpr (kPart == Part::statistic) {
      const float total = group_sum(dot, tpr, scratch);
      if (live && t == 0) split.out[row] = total;
    } else {
      // Convert x and dy again below (and re-read w, where it is not in registers) rather than
      // keeping 3 × V floats per pack alive.
#pragma unroll
      for (int k = 0; k < P; ++k) forget(xv[k]), forget(gv[k]);
      const float* w2 = forget(w);
      const float total = kDots ? group_sum(dot, tpr, scratch) : live ? split.in[row] : 0.f;
      const float mean = total / float(kPart == Part::whole ? dim : split.full_dim);
      const float c = rs * rs * mean;  // dx = rs·(w⊙dy) − c·x

#pragma unroll
      for (int k = 0; k < P; ++k) {
        const int col = (k * tpr + t) * V;
        if (live && col < dim) {
          float wv[V];
          w_of(wv, k, w2);
          Pack<T, V> out;
#pragma unroll
          for (int j = 0; j < V; ++j) {
            float d = fmaf(rs, wv[j] * to_float(gv[k].v[j]), -(c * to_float(xv[k].v[j])));
            if constexpr (kAccumulate) d += to_float(ov[k].v[j]);
            out.v[j] = from_float<T>(d);
          }
          store_pack<T, V>(dxr + col, out);
        }
      }
    }
  }

  if constexpr (kGrads) {
    let_dependents_start();  // the partial reduction may be scheduled; it waits for this kernel's end
    __syncthreads();  // every thread's sums are in place, or it is done with the staging buffers
    // partial[b, col] = Σ over the block's groups of their sums for col, in a fixed order. The sums
    // are sums[k][g·C + c] (pack index k, group g, column c of the C = tpr·V a pack index covers,
    // so col = k·C + c): from the start, or stored here by every thread at once where they were
    // registers. Every thread adds: with P·C ≥ kBlock
    // columns, whole columns in group order (each on one thread); with narrower rows (many
    // groups: 256 at the B and C norms' width 16) S = kBlock / (P·C) slices of the groups
    // (g ≡ s mod S, in order), then the slices in order. (One thread adding all groups of its
    // columns was a chain of 4096 adds at width 16, 22 µs a launch.)
    if constexpr (kRegisterSums) {
#pragma unroll
      for (int k = 0; k < P; ++k) store_floats<V>(own_sums(k), acc[k]);
      __syncthreads();
    }
    const int C = tpr * V, cols = P * C, S = max(1, kBlock / cols);
    for (int i = threadIdx.x; i < S * cols; i += kBlock) {
      const int col = i % cols, slice = i / cols;
      const float* column = sums + col / C * kBlock * V + col % C;  // [g·C]
      float v = 0;
      for (int g = slice; g < groups; g += S) v += column[g * C];
      if (S > 1) {
        slices[i] = v;
      } else if (col < dim) {
        partial[int64_t(blockIdx.x) * dim + col] = v;
      }
    }
    if (S > 1) {  // uniform over the block
      __syncthreads();
      const int col = threadIdx.x;
      if (col < cols && col < dim) {
        float v = 0;
        for (int slice = 0; slice < S; ++slice) v += slices[slice * cols + col];
        partial[int64_t(blockIdx.x) * dim + col] = v;
      }
    }
  }
}

// dw[c] += Σ_b partial[b, c] over b < blocks, in column_sum's fixed order. Launched as the
// backward's programmatic dependent (below), so it waits here for the backward to finish.
__global__ void __launch_bounds__(kColumnSumColumns * kColumnSumSlices)
    rmsnorm_reduce_partials_kernel(float* dw, const float* partial, int blocks, int dim) {
  wait_for_primary();
  const int c = blockIdx.x * kColumnSumColumns + threadIdx.x;
  const float total = column_sum(partial, blocks, dim, c, c < dim);
  if (threadIdx.y == 0 && c < dim) dw[c] += total;
}

// ---------------------------------------------------------------------------------------------
// Host side.

// How a row of n packs is spread: tpr threads (a power of two ≤ kBlock), each with `packs` packs
// (a power of two), aiming at `target` packs per thread.
struct RowLayout {
  int tpr, packs;
};

constexpr RowLayout row_layout(int64_t n, int target) {
  int tpr = 1;
  while (tpr < kBlock && int64_t(tpr) * target < n) tpr *= 2;
  int packs = 1;
  while (int64_t(packs) * tpr < n) packs *= 2;
  return {tpr, packs};
}

// Calls f(std::integral_constant<int, P>) with P the power of two ≥ packs (packs ≤ kMax).
template <int kMax, class F>
void with_packs(int packs, F&& f) {
  if constexpr (kMax > 1) {
    if (packs <= kMax / 2) {
      with_packs<kMax / 2>(packs, f);
      return;
    }
  }
  HYMBA_ASSERT(packs <= kMax);
  f(std::integral_constant<int, kMax>{});
}

// Elements of T in a 16-byte pack.
template <class T>
constexpr int kVec = 16 / int(sizeof(T));

void check_dim(const char* op, int64_t dim) {
  if (dim > kMaxDim) fail(op, ": dim ", dim, " is above the supported ", kMaxDim);
}

int sm_count() {
  int device = 0, sms = 0;
  HYMBA_CUDA_CHECK(cudaGetDevice(&device));
  HYMBA_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

template <class Kernel>
int blocks_per_sm(Kernel kernel, size_t smem_bytes) {
  int n = 0;
  HYMBA_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, kBlock, smem_bytes));
  return std::max(n, 1);
}

// The split norm's row statistics are sums over full_dim elements, of which this call holds dim.
void check_full_dim(const char* op, int64_t dim, int64_t full_dim) {
  if (full_dim < std::max<int64_t>(dim, 1) || full_dim > INT_MAX) {
    fail(op, ": full_dim ", full_dim, " must be at least dim ", dim, " and 1, and at most ", INT_MAX);
  }
}

template <Part kPart, class T, int V>
void launch_forward(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx, const float* w, int64_t rows, int dim,
                    float eps, Split split, bool average, cudaStream_t stream) {
  constexpr int kMaxPacks = row_layout(kMaxDim / V, kForwardPacks).packs;  // at the widest row
  const RowLayout L = row_layout(dim / V, kForwardPacks);
  const int64_t blocks = (rows + kBlock / L.tpr - 1) / (kBlock / L.tpr);
  with_packs<kMaxPacks>(L.packs, [&](auto p) {
    constexpr int P = decltype(p)::value;
    const auto kernel = [&] {
      if constexpr (kPart == Part::statistic) {  // writes no y, so it has no averaging form
        return rmsnorm_forward_kernel<T, V, P, kPart, false>;
      } else {
        return average ? rmsnorm_forward_kernel<T, V, P, kPart, true> : rmsnorm_forward_kernel<T, V, P, kPart, false>;
      }
    }();
    kernel<<<unsigned(blocks), kBlock, 0, stream>>>(y, ldy, rstd, x, ldx, w, rows, dim, L.tpr, eps, split);
  });
  HYMBA_CUDA_CHECK_LAUNCH();
}

// launch_forward at V = 16-byte packs where they fit (packs_fit), else at V = 1.
template <Part kPart, class T>
void run_forward(bool packed, T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx, const float* w, int64_t rows,
                 int64_t dim, double eps, Split split, bool average, cudaStream_t stream) {
  auto* launch = packed ? &launch_forward<kPart, T, kVec<T>> : &launch_forward<kPart, T, 1>;
  launch(y, ldy, rstd, x, ldx, w, rows, int(dim), float(eps), split, average, stream);
}

// Blocks of a backward kernel resident per SM, asked once per kernel (which is then also allowed
// its dynamic shared memory).
template <class T, int V, int P, bool kAccumulate, Part kPart>
int backward_blocks_per_sm() {
  static const int n = [] {
    const auto kernel = &rmsnorm_backward_kernel<T, V, P, kAccumulate, kPart>;
    constexpr size_t smem = backward_smem_bytes<T, V, P, kAccumulate, kPart>();
    allow_smem(kernel, smem);
    return blocks_per_sm(kernel, smem);
  }();
  return n;
}

template <Part kPart, class T, int V>
void launch_backward(T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy, const T* x, int64_t ldx,
                     const float* w, const float* rstd, int64_t rows, int dim, bool accumulate_dx, float* workspace,
                     Split split, cudaStream_t stream) {
  constexpr bool kGrads = kPart != Part::statistic;  // writes dx and the dw partials
  constexpr int kMaxPacks = row_layout(kMaxDim / V, kBackwardPacks).packs;  // at the widest row
  const RowLayout L = row_layout(dim / V, kBackwardPacks);
  const int64_t tiles = (rows + kBlock / L.tpr - 1) / (kBlock / L.tpr);
  const int64_t allowed = kGrads ? rmsnorm_backward_workspace(rows, dim) / dim : tiles;  // partial rows
  int blocks = 0;
  with_packs<kMaxPacks>(L.packs, [&](auto p) {
    constexpr int P = decltype(p)::value;
    const auto launch = [&](auto accumulate) {
      constexpr bool kAcc = decltype(accumulate)::value;
      // Blocks resident per SM: the grid must fit at once, or the blocks that start late would
      // finish late. The from-dots kernel is the whole one less the row dot, and either may need
      // the more registers: both take the smaller of their two grids, so both add dw in the same
      // order (the same bits with one rank).
      int per_sm = backward_blocks_per_sm<T, V, P, kAcc, kPart>();
      if constexpr (kGrads) {
        per_sm = std::min({per_sm, backward_blocks_per_sm<T, V, P, kAcc, Part::whole>(),
                           backward_blocks_per_sm<T, V, P, kAcc, Part::from_statistic>()});
      }
      blocks = int(std::min({tiles, int64_t(per_sm) * sm_count(), allowed}));
      rmsnorm_backward_kernel<T, V, P, kAcc, kPart>
          <<<unsigned(blocks), kBlock, backward_smem_bytes<T, V, P, kAcc, kPart>(), stream>>>(
          dx, lddx, workspace, dy, lddy, x, ldx, w, rstd, rows, dim, L.tpr, split);
    };
    if constexpr (!kGrads) {
      launch(std::false_type{});
    } else if (accumulate_dx) {
      launch(std::true_type{});
    } else {
      launch(std::false_type{});
    }
  });
  HYMBA_CUDA_CHECK_LAUNCH();
  if constexpr (kGrads) {
    // The partial reduction as the backward's programmatic dependent (see let_dependents_start):
    // its launch overlaps the backward's end-of-block sums (bf16 backward at width 1600 -2%).
    cudaLaunchConfig_t config{};
    config.gridDim = column_sum_grid(dim);
    config.blockDim = column_sum_block();
    config.stream = stream;
    cudaLaunchAttribute dependent{};
    dependent.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    dependent.val.programmaticStreamSerializationAllowed = 1;
    config.attrs = &dependent;
    config.numAttrs = 1;
    HYMBA_CUDA_CHECK(cudaLaunchKernelEx(&config, rmsnorm_reduce_partials_kernel, dw, static_cast<const float*>(workspace),
                                        int(blocks), dim));
  }
}

// launch_backward at V = 16-byte packs where they fit (packs_fit), else at V = 1.
template <Part kPart, class T>
void run_backward(bool packed, T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy, const T* x, int64_t ldx,
                  const float* w, const float* rstd, int64_t rows, int64_t dim, bool accumulate_dx, float* workspace,
                  Split split, cudaStream_t stream) {
  auto* launch = packed ? &launch_backward<kPart, T, kVec<T>> : &launch_backward<kPart, T, 1>;
  launch(dx, lddx, dw, dy, lddy, x, ldx, w, rstd, rows, int(dim), accumulate_dx, workspace, split, stream);
}

}  // namespace

template <class T>
void rmsnorm_forward(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx, const float* w,
                     int64_t rows, int64_t dim, double eps, cudaStream_t stream, bool average) {
  check_dim("rmsnorm_forward", dim);
  if (rows <= 0 || dim <= 0) return;
  run_forward<Part::whole>(packs_fit<T>(kVec<T>, dim, {ldx, ldy}, {x, y, w}), y, ldy, rstd, x, ldx, w, rows, dim, eps, {},
                           average, stream);
}

int64_t rmsnorm_backward_workspace(int64_t rows, int64_t dim) {
  // min(rows, max(kMinBackwardBlocks, kPartialBudget / dim)) partial rows of dim floats, written
  // so that it never decreases as rows or dim grow (a caller sizes one buffer for its widest call).
  if (rows <= 0 || dim <= 0) return 0;
  return std::min(rows * dim, std::max(kMinBackwardBlocks * dim, kPartialBudget));
}

template <class T>
void rmsnorm_backward(T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy, const T* x,
                      int64_t ldx, const float* w, const float* rstd, int64_t rows, int64_t dim,
                      bool accumulate_dx, float* workspace, cudaStream_t stream) {
  check_dim("rmsnorm_backward", dim);
  if (rows <= 0 || dim <= 0) return;
  run_backward<Part::whole>(packs_fit<T>(kVec<T>, dim, {lddx, lddy, ldx}, {dx, dy, x, w}), dx, lddx, dw, dy, lddy, x, ldx, w,
                            rstd, rows, dim, accumulate_dx, workspace, {}, stream);
}

// The halves of the split norm decide packs by the whole norm's rule on the tensors each touches,
// so with one rank they take the whole norm's layout (where y, w and dx are aligned as x is).

template <class T>
void rmsnorm_sum_squares(float* sums, const T* x, int64_t ldx, int64_t rows, int64_t dim, cudaStream_t stream) {
  check_dim("rmsnorm_sum_squares", dim);
  if (rows <= 0) return;  // dim 0 (a rank holding none of the row) writes zeros
  run_forward<Part::statistic, T>(packs_fit<T>(kVec<T>, dim, {ldx}, {x}), nullptr, 0, nullptr, x, ldx, nullptr, rows, dim,
                                  0.0, {sums, nullptr, 0}, false, stream);
}

template <class T>
void rmsnorm_forward_from_sums(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx, const float* w,
                               const float* sums, int64_t rows, int64_t dim, int64_t full_dim, double eps,
                               cudaStream_t stream, bool average) {
  check_dim("rmsnorm_forward_from_sums", dim);
  check_full_dim("rmsnorm_forward_from_sums", dim, full_dim);
  if (rows <= 0) return;  // dim 0 still writes rstd
  run_forward<Part::from_statistic>(packs_fit<T>(kVec<T>, dim, {ldx, ldy}, {x, y, w}), y, ldy, rstd, x, ldx, w, rows, dim,
                                    eps, {nullptr, sums, int(full_dim)}, average, stream);
}

template <class T>
void rmsnorm_backward_dots(float* dots, const T* dy, int64_t lddy, const T* x, int64_t ldx, const float* w,
                           const float* rstd, int64_t rows, int64_t dim, cudaStream_t stream) {
  check_dim("rmsnorm_backward_dots", dim);
  if (rows <= 0) return;  // dim 0 writes zeros
  run_backward<Part::statistic, T>(packs_fit<T>(kVec<T>, dim, {lddy, ldx}, {dy, x, w}), nullptr, 0, nullptr, dy, lddy, x, ldx,
                                   w, rstd, rows, dim, false, nullptr, {dots, nullptr, 0}, stream);
}

template <class T>
void rmsnorm_backward_from_dots(T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy, const T* x,
                                int64_t ldx, const float* w, const float* rstd, const float* dots, int64_t rows,
                                int64_t dim, int64_t full_dim, bool accumulate_dx, float* workspace,
                                cudaStream_t stream) {
  check_dim("rmsnorm_backward_from_dots", dim);
  check_full_dim("rmsnorm_backward_from_dots", dim, full_dim);
  if (rows <= 0 || dim <= 0) return;  // nothing to write
  run_backward<Part::from_statistic>(packs_fit<T>(kVec<T>, dim, {lddx, lddy, ldx}, {dx, dy, x, w}), dx, lddx, dw, dy, lddy, x,
                                     ldx, w, rstd, rows, dim, accumulate_dx, workspace,
                                     {nullptr, dots, int(full_dim)}, stream);
}

#define HYMBA_INSTANTIATE(T)                                                                                    \
  template void rmsnorm_forward<T>(T*, int64_t, float*, const T*, int64_t, const float*, int64_t, int64_t,     \
                                   double, cudaStream_t, bool);                                                 \
  template void rmsnorm_backward<T>(T*, int64_t, float*, const T*, int64_t, const T*, int64_t, const float*,   \
                                    const float*, int64_t, int64_t, bool, float*, cudaStream_t);               \
  template void rmsnorm_sum_squares<T>(float*, const T*, int64_t, int64_t, int64_t, cudaStream_t);             \
  template void rmsnorm_forward_from_sums<T>(T*, int64_t, float*, const T*, int64_t, const float*,             \
                                             const float*, int64_t, int64_t, int64_t, double, cudaStream_t,    \
                                             bool);                                                             \
  template void rmsnorm_backward_dots<T>(float*, const T*, int64_t, const T*, int64_t, const float*,           \
                                         const float*, int64_t, int64_t, cudaStream_t);                        \
  template void rmsnorm_backward_from_dots<T>(T*, int64_t, float*, const T*, int64_t, const T*, int64_t,       \
                                              const float*, const float*, const float*, int64_t, int64_t,      \
                                              int64_t, bool, float*, cudaStream_t);
HYMBA_INSTANTIATE(float)
HYMBA_INSTANTIATE(bf16)
#undef HYMBA_INSTANTIATE

}  // namespace hymba::cuda
