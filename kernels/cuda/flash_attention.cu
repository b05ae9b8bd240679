// Flash attention (FlashAttention-2 style) for hd = 64, vd = 128, bf16, on Hopper's warpgroup MMA
// (wgmma, sm_90a). v2: the dk/dv work split into parts with a fixed-order reduction. v3: every
// kernel on wgmma (v1 and v2 ran mma.sync). v4: tiles loaded by TMA; the forward's softmax
// overlaps the previous tile's P V.
//
// Tiling. Tiles are 64 rows (queries or keys). Every block is one warpgroup (4 warps); warp w holds
// rows 16w .. 16w + 15 of each accumulator in the m16n8 C layout, so the softmax works on the
// accumulators in place. The products, per 64 x 64 tile pair:
//   forward  block (b, h, 64 queries), per key tile: S = Q Kᵀ (4 wgmma m64n64k16), online softmax
//            in fp32, O += P V (4 wgmma m64n128k16). Writes out and lse. The running max moves in
//            steps above 2^8, so most tiles skip the rescale of O.
//   dq       block (b, h, 64 queries), per key tile: S = Q Kᵀ (4 m64n64k16) and dP = dO Vᵀ (8),
//            P = exp(S − lse), dS = P (dP − D), dQ += dS K (4 m64n64k16).
//   dk/dv    block (b, KV head g, 64 keys, part p): the (query head of the group, query tile that
//            sees the keys) pairs, head outermost, cut into `parts` near-equal ranges (dkdv_parts,
//            1 to 4, from the shape); per pair Sᵀ = K Qᵀ (4) and dPᵀ = V dOᵀ (8), Pᵀ, dSᵀ,
//            dV += Pᵀ dO (4 m64n128k16), dK += dSᵀ Q (4 m64n64k16). With one part the block adds
//            its fp32 sums into the bf16 gradients (the keys' one owner); with more it writes them
//            to a workspace slot, and flash_dkdv_reduce_kernel adds the slots of each key row in
//            part order into dk/dv (+=). No atomics either way.
//   D        D_i = dout_i · out_i and lse_i·log2(e), one warp per row, into the workspace.
//
// Operands. The first product of each pair reads both operands from shared memory (both K-major:
// the head dim is contiguous in Q, K, V and dO rows). The second takes the probabilities (or dS)
// from registers: the C fragments of n-tiles 2k and 2k+1 are exactly the A fragment of k-step k
// once packed to bf16x2 (FlashAttention-2's register reuse, which wgmma's register A layout
// keeps), and its B (V, K, dO or Q, with the product's N dimension contiguous) is MN-major. Shared
// tiles are 128-byte swizzled atom columns (the wgmma section), loaded by TMA. Every wgmma
// group is waited for in the iteration that issued it, and no group is issued or waited for
// under a condition (either makes ptxas serialise every wgmma of the kernel, silently; the
// forward's pipeline peels its first and last steps for that reason).
//
// Pipeline. K/V tiles (forward, dq) and Q/dO tiles (dk/dv) are double-buffered and copied by the
// TMA unit (the tile loads section): at the top of iteration i the block synchronises once (every
// warp is done with iteration i − 1, so its buffer is free), thread 0 arms the other buffer's
// mbarrier and issues tile i + 1 into it, and every thread waits on tile i's mbarrier. The dk/dv
// kernel's lse and D rows still come by 4-byte cp.async. The forward is pipelined one step
// further: S of tile i is issued together with P V of tile i − 1, and the softmax of tile i runs
// while the tensor cores finish that product (K and V have separate barriers, since V of a tile is
// read one iteration after its K). Rows past the sequence end are zero-filled by TMA, so a padded
// query row or key row contributes exact zeros; such rows are never stored.
//
// Masks. A block visits only the key tiles that hold a key some of its rows may see: under the
// global mask the tiles up to the (newest) diagonal; under the local mask the tiles holding meta
// tokens [0, M) and the tiles meeting [q0 − W, q1], never the masked middle (key_tiles; dk/dv uses
// the mirror image, query_tiles). A tile whose every (query, key) pair of a warp slab (forward) or
// a tile (dq, dk/dv) is allowed (tile_unmasked) skips the per-element test; the others apply
// attention_allows per element, the same function as the CPU reference. The forward visits the
// newest diagonal tile first; a row whose first tiles are all masked keeps m = −inf, and a guard
// keeps exp2(−inf − −inf) from ever being evaluated. Softmax uses exp2 of scores prescaled by
// scale·log2(e); lse is stored with the natural log.
//
// Work order: forward and dq blocks start from the last query tiles (the heaviest under the
// causal mask), dk/dv blocks from the first key tiles (seen by the most queries; under the local
// mask the meta-token tiles are seen by every later query).
//
// dk/dv split (v2). v1 ran one dk/dv block per (b, KV head, key tile): 340 blocks at the 1.5B
// training shape (1.3 waves of 2 blocks per SM), with the meta-token blocks carrying 170 (head,
// query tile) pairs against ~90 per block slot on average, so the critical path was ~2x the
// ideal. dkdv_parts picks the parts from the shape: enough for 2 waves (528 blocks) and no block
// above the ideal per-slot share (v2 asked for ~4 waves and half the share, which the wgmma
// kernel made too many: each part's partial costs traffic); 2 at B 2, S 2176 and S 8320 local
// (680 and 2600 blocks), 1 at S 8320 global. Workspace for the partials:
// B·nkv·tiles·parts·64·192 floats (34 MB at S 2176, 130 MB at S 8320 local), written once and
// read once by the reduction.
// Not done: dq inside the dk/dv pass. A deterministic version needs a dq partial per (query row,
// visible key tile): B·nh·S·64 floats times ~18 key tiles at S 2176, W 1024 (~500 MB), or dS
// stored in bf16 per visible pair (~180 MB) for a separate dS·K pass; neither is reasonable
// scratch, so the dq kernel keeps recomputing S and dP (1280 executed FLOPs per pair for 896
// counted).
//
// Numerics: P and dS are rounded to bf16 as MMA operands (as in FlashAttention-2); row sums,
// max, lse, D, every accumulator and the dk/dv partials are fp32. Deterministic: fixed iteration
// order, fixed part order in the reduction (parts depend on the shape only), no atomics.
//
// v1 measured (H100, B 2, nh 25, nkv 5, local W 1024, M 128, S 2176): fwd 200.6, bwd 127.3,
// fwd+bwd 143.0 TFLOP/s (predicted ~300 / ~180 / ~200); global S 2176: 221.5 / 144.7 / 161.5.
//
// v2 on the H100 SXM, predicted before any measurement (TFLOP/s from unmasked pairs as in
// bench/attention.cpp): the dk/dv split brings dk/dv near its throughput-bound time (~1.6x) and
// the reduction costs ~45 us, local S 2176 backward ~0.50 ms ≈ 165 TFLOP/s; 128-row forward
// blocks (8 warps, one block per SM at 216 registers) +5..15%, forward ~215 TFLOP/s, fwd+bwd
// ~175. Measured (commit of this file's merge, bench-attention, local S 2176): backward
// 0.549-0.551 ms = 150 TFLOP/s (v1 0.649); the 128-row forward 0.204 ms = 173.5 TFLOP/s, slower
// than v1's 0.177 (one block per SM leaves each barrier stall uncovered), so the forward stays at
// 64 rows: 0.185 ms = 191.3 TFLOP/s (per-warp masking costs a little against v1's 200.6), fwd+bwd
// 0.736 ms = 160.4 TFLOP/s (v1 143.0). This still misses the 350 / 250 goal: the forward is
// latency-bound on mma.sync with 2 warps per scheduler (ncu v1: issue slots 44%); reaching 350
// likely needs wgmma (sm_90a) with warp-specialised TMA loads, and the backward needs dq without
// the recompute.
//
// v3 on wgmma (H100, bench-attention, local S 2176; docs/PERF.md has each step): forward 0.181 ->
// 0.126 ms (196 -> 282 TFLOP/s), backward 0.554 -> 0.348 ms (149 -> 238) with the dk/dv parts
// retuned, fwd + bwd 0.475 ms = 249 TFLOP/s against the goal of 250 (273-280 at the shipped
// micro-batches). Predicted +30-60% for the forward; the backward was converted after the forward
// had shown the primitives work.
//
// v4 (same bench): TMA loads, forward 0.126 -> 0.108 ms, backward 0.348 -> 0.310 ms; the pipelined
// forward 0.106 ms; V triple-buffered 0.102 ms; out and dq stored from shared memory in 16-byte
// pieces: forward 0.093 ms = 380 TFLOP/s, backward 0.303 ms, fwd + bwd 296 TFLOP/s (goals 350 and
// 250 met).
//
// Resource usage (nvcc 13.0, -O3, sm_90a, --resource-usage): no spills, no stack.
//   flash_forward_kernel      147 registers, 74752 B dynamic shared (3 blocks of 128 threads / SM)
//   flash_dq_kernel           144 registers, 74752 B dynamic shared (3 blocks / SM)
//   flash_dkdv_kernel         212 registers, 75776 B dynamic shared (2 blocks / SM)
//   flash_dkdv_reduce_kernel   32 registers, no shared memory
//   flash_row_dot_kernel       26 registers, no shared memory
#include "cuda/flash_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "attention_mask.h"
#include "core/cuda_check.h"
#include "core/error.h"
#include "cuda/alignment.h"
#include "cuda/copy_async.cuh"
#include "cuda/dtype.cuh"
#include "cuda/shared_memory.h"
#include "cuda/tma.cuh"
#include "cuda/tma.h"

namespace hymba::cuda {

namespace {

constexpr int kHd = int(kFlashHeadDim);   // q/k head dim
constexpr int kVd = int(kFlashValueDim);  // v head dim
constexpr int kBlock = 64;                // rows of every tile (queries or keys); a block's own rows
constexpr int kWarps = 4;                 // a block is one warpgroup; warp w holds rows 16w .. 16w + 15
constexpr int kThreads = kWarps * 32;
constexpr int kAtomTile = kBlock * 64;    // bf16 of one 128-byte-swizzled [kBlock][64] atom column
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kRescaleLog2 = 8.f;       // forward: the running max moves in steps above 2^8

static_assert(kBlock == 16 * kWarps, "a warp owns 16 rows of the block");
static_assert(kHd == 64 && kVd == 128, "one atom column of hd, two of vd (the k_step helper)");

// ---- tile lists (host and device) ----------------------------------------------------------
// Positions are int: the launchers take S <= 2^30, so every position of a padded tile and every
// sum below fits.

HYMBA_HOST_DEVICE inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The mask of a layer with window and meta clamped to [0, S + 2·kBlock]: for positions below
// S + 2·kBlock (every row of every tile) attention_allows
// gives the same answers as with the shape's own values, and sums stay in int.
struct Mask {
  bool global;
  int window, meta;
};

HYMBA_HOST_DEVICE inline Mask make_mask(const AttentionShape& s) {
  const int64_t top = s.S + 2 * kBlock;
  auto clamp = [&](int64_t x) { return int(x < 0 ? 0 : x > top ? top : x); };
  return {s.global, clamp(s.window), clamp(s.meta)};
}

HYMBA_HOST_DEVICE inline bool allows(int q, int k, const Mask& m) {
  return attention_allows(q, k, m.global, m.window, m.meta);
}

// Whether every (query, key) pair of the rows [q0, q0 + rows) and the key tile starting at k0 is
// allowed, so the per-element mask can be skipped. Pairs with a query past the sequence end count
// too (they are never stored), and a key past the end is above every valid query, so an unmasked
// tile never holds one. rows is 64 (dq, dk/dv: whole tiles) or 16 (a forward warp's slab).
HYMBA_HOST_DEVICE inline bool tile_unmasked(int q0, int rows, int k0, const Mask& m) {
  const int k1 = k0 + kBlock - 1, q1 = q0 + rows - 1;
  if (k1 > q0) return false;  // some key above some query
  return m.global || k1 < m.meta || q1 - k0 <= m.window;
}

// The key tiles query tile qt visits, as iterations i = 0 .. n − 1: first the tiles meeting the
// window, qt (the newest diagonal) down to start2, then the meta-token tiles meta − 1 down to 0
// that the window range does not already hold. A key tile outside both holds no visible key for any row.
struct KeyTiles {
  int qt;      // the newest diagonal tile
  int meta;    // meta-token tiles [0, meta) visited after the window range
  int start2;  // first tile of the window range [start2, qt]
  int n;       // iterations

  HYMBA_HOST_DEVICE int tile(int i) const {
    const int n2 = qt + 1 - start2;
    return i < n2 ? qt - i : meta - 1 - (i - n2);
  }
};

HYMBA_HOST_DEVICE inline KeyTiles key_tiles(int qt, const Mask& m) {
  if (m.global) return {qt, 0, 0, qt + 1};
  const int meta = ceil_div(m.meta, kBlock) < qt + 1 ? ceil_div(m.meta, kBlock) : qt + 1;
  const int first_key = qt * kBlock - m.window;  // the oldest key row qt·kBlock sees in its window
  const int w0 = first_key > 0 ? first_key / kBlock : 0;
  const int start2 = meta > w0 ? meta : w0;
  return {qt, meta, start2, meta + qt + 1 - start2};
}

// The query tiles [first, first + count) that see a key of key tile kt: all later ones for a
// global layer or a tile holding a meta token, else those within the window of its last key.
struct QueryTiles {
  int first, count;
};

HYMBA_HOST_DEVICE inline QueryTiles query_tiles(int kt, int tiles, const Mask& m) {
  int last = tiles - 1;
  if (!m.global && kt * kBlock >= m.meta) {
    const int reach = (kt * kBlock + kBlock - 1 + m.window) / kBlock;
    if (reach < last) last = reach;
  }
  return {kt, last + 1 - kt};
}

// ---- PTX wrappers ---------------------------------------------------------------------------

__device__ __forceinline__ float exp2_approx(float x) {  // exp2(−inf) = 0
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Two floats as bf16x2, the first in the low half (the lower column of a fragment register).
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &v, sizeof(r));
  return r;
}
__device__ __forceinline__ float2 unpack_bf16(uint32_t r) {
  __nv_bfloat162 v;
  memcpy(&v, &r, sizeof(r));
  return __bfloat1622float2(v);
}

// ---- wgmma (sm_90a) --------------------------------------------------------------------------
// Shared tiles for wgmma are "atom columns" of 64 bf16 (128 bytes) per row in the 128-byte swizzle:
// the 16-byte chunk c of row r sits at chunk c ^ (r % 8) of the row, each 8-row group is 1024 bytes,
// and the tile starts 1024-byte aligned (the hardware swizzles on address bits, so a k-step inside
// the tile is its start address plus the step's unswizzled byte offset). A tile wider than 64 is
// several atom columns one after another.

// The matrix descriptor of a 128-byte-swizzled tile at p: 8-row groups 1024 bytes apart (stride
// byte offset), atom columns `column_bytes` apart (leading byte offset, read for MN-major operands
// only).
__device__ __forceinline__ uint64_t sw128_desc(const void* p, uint32_t column_bytes) {
  return uint64_t((smem_address(p) & 0x3FFFF) >> 4) | uint64_t((column_bytes >> 4) & 0x3FFF) << 16 |
         uint64_t(1024 >> 4) << 32 | uint64_t(1) << 62;
}

// A descriptor offset (16-byte units) of k-step kk of a K-major operand [64 rows][64·c] held in
// atom columns: column kk / 4, 32 bytes a step inside it.
__device__ __forceinline__ uint64_t k_step(int kk) {
  return uint64_t((kk / 4) * (kAtomTile * int(sizeof(bf16)) >> 4) + (kk % 4) * 2);
}
// The descriptor offset of k-step kk (16 rows of 128 bytes) of an MN-major operand.
__device__ __forceinline__ uint64_t mn_step(int kk) { return uint64_t(kk * (16 * 128 >> 4)); }

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most N of this warpgroup's committed wgmma groups are still running.
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
__device__ __forceinline__ void wgmma_wait_all() { wgmma_wait<0>(); }
// Keeps the compiler from moving accumulator reads or writes across a wgmma wait or fence.
template <int N>
__device__ __forceinline__ void fence_accumulators(float (&d)[N][4]) {
#pragma unroll
  for (int n = 0; n < N; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[n][e])::"memory");
}

// The accumulator operands of a wgmma: "+f" constraints of the 8 n-tiles d[i .. i + 7][0..3]
// (32 registers), and the operand numbers of 32 or 64 of them in the instruction text.
#define HYMBA_WGMMA_ACC2(d, i)                                                              \
  "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3]), "+f"(d[(i) + 1][0]),          \
      "+f"(d[(i) + 1][1]), "+f"(d[(i) + 1][2]), "+f"(d[(i) + 1][3])
#define HYMBA_WGMMA_ACC8(d, i)                                                              \
  HYMBA_WGMMA_ACC2(d, i), HYMBA_WGMMA_ACC2(d, (i) + 2), HYMBA_WGMMA_ACC2(d, (i) + 4),       \
      HYMBA_WGMMA_ACC2(d, (i) + 6)
#define HYMBA_WGMMA_REGS_0_31                                                               \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, "    \
  "%19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define HYMBA_WGMMA_REGS_32_63                                                              \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, "    \
  "%49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"

// d (64 x 64 fp32; per warp its 16 rows as [n-tile][4] m16n8 C fragments) = or += A · Bᵀ for one
// k-step of 16: A (64 x 16) and B (64 x 16) K-major in shared memory, given by descriptors.
__device__ __forceinline__ void wgmma_64x64_ss(float (&d)[8][4], uint64_t a, uint64_t b, bool accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      HYMBA_WGMMA_REGS_0_31
      "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      :
      HYMBA_WGMMA_ACC8(d, 0)
      : "l"(a), "l"(b), "r"(int(accumulate)));
}

// d (64 x 128 fp32, [n-tile][4]) += A · B for one k-step of 16: A (64 x 16) in registers (each
// warp the m16n8k16 A fragment of its 16 rows), B (16 x 128) MN-major in shared memory.
__device__ __forceinline__ void wgmma_64x128_rs(float (&d)[16][4], const uint32_t (&a)[4], uint64_t b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
      HYMBA_WGMMA_REGS_0_31 ", " HYMBA_WGMMA_REGS_32_63
      "}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      :
      HYMBA_WGMMA_ACC8(d, 0), HYMBA_WGMMA_ACC8(d, 8)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

// d (64 x 64 fp32, [n-tile][4]) += A · B for one k-step of 16: A (64 x 16) in registers, B
// (16 x 64) MN-major in shared memory.
__device__ __forceinline__ void wgmma_64x64_rs(float (&d)[8][4], const uint32_t (&a)[4], uint64_t b) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
      HYMBA_WGMMA_REGS_0_31
      "}, {%32, %33, %34, %35}, %36, p, 1, 1, 1;\n}\n"
      :
      HYMBA_WGMMA_ACC8(d, 0)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(1));
}

#undef HYMBA_WGMMA_ACC2
#undef HYMBA_WGMMA_ACC8
#undef HYMBA_WGMMA_REGS_0_31
#undef HYMBA_WGMMA_REGS_32_63

// The block's dynamic shared memory from its first 1024-byte boundary (the 128-byte swizzle's
// alignment; each kernel's size asks for 1024 bytes more).
__device__ __forceinline__ unsigned char* swizzle_aligned_smem() {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  return smem_raw + (1024 - smem_address(smem_raw) % 1024) % 1024;
}

// ---- tile loads (TMA) -------------------------------------------------------------------------
// Every shared tile is copied by the TMA unit from a CUtensorMap of its tensor (kernels/cuda/tma.h:
// [B][S][heads·dim] bf16, boxes of [64 rows][64 columns] in the 128-byte swizzle, rows past the
// sequence end zero-filled, so a padded query or key row contributes exact zeros). Thread 0 arms
// the buffer's barrier with the bytes and issues the copies; no other thread spends an instruction
// on addresses (the cp.async loads of v3 were ~40% of the forward's instructions).

constexpr uint32_t kAtomBytes = kAtomTile * sizeof(bf16);  // one [64][64] atom column, 8 KB

// Rows [row0, row0 + 64) and columns [col0, col0 + 64·kColumns) of batch b of `map` into kColumns
// atom columns at dst; their kColumns·kAtomBytes complete on bar (armed by the caller).
template <int kColumns>
__device__ __forceinline__ void load_tile(bf16* dst, const CUtensorMap& map, int col0, int row0, int b, uint64_t* bar) {
#pragma unroll
  for (int c = 0; c < kColumns; ++c) tma_load_tile(dst + c * kAtomTile, map, col0 + 64 * c, row0, b, bar);
}

// The block's barriers of its tile buffers, initialised by thread 0 before any thread uses them.
template <int N>
__device__ __forceinline__ void init_tile_barriers(uint64_t (&full)[N]) {
  if (threadIdx.x == 0) {
#pragma unroll
    for (int i = 0; i < N; ++i) mbarrier_init(&full[i]);
    fence_barrier_init();
  }
  __syncthreads();
}

// Score accumulators [2K n-tiles][4] (16 rows x 16K columns) as the A fragments of the next
// product over those columns: k-step kk takes n-tiles 2kk and 2kk + 1.
template <int K>
__device__ __forceinline__ void scores_to_a(uint32_t (&a)[K][4], const float (&c)[2 * K][4]) {
#pragma unroll
  for (int kk = 0; kk < K; ++kk) {
    a[kk][0] = pack_bf16(c[2 * kk][0], c[2 * kk][1]);
    a[kk][1] = pack_bf16(c[2 * kk][2], c[2 * kk][3]);
    a[kk][2] = pack_bf16(c[2 * kk + 1][0], c[2 * kk + 1][1]);
    a[kk][3] = pack_bf16(c[2 * kk + 1][2], c[2 * kk + 1][3]);
  }
}

// The backward's first pair of products, from shared memory as one wgmma group, waited for:
// s = A Bᵀ over the head dim (4 k-steps of m64n64k16) and dp = C Dᵀ over the value dim (8), all
// four operands K-major. dq: S = Q Kᵀ, dP = dO Vᵀ; dk/dv: Sᵀ = K Qᵀ, dPᵀ = V dOᵀ.
__device__ __forceinline__ void scores_and_dp(float (&s)[8][4], float (&dp)[8][4], uint64_t a, uint64_t b,
                                              uint64_t c, uint64_t d) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) wgmma_64x64_ss(s, a + k_step(kk), b + k_step(kk), kk > 0);
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) wgmma_64x64_ss(dp, c + k_step(kk), d + k_step(kk), kk > 0);
  wgmma_commit();
  wgmma_wait_all();
  fence_accumulators(s);
  fence_accumulators(dp);
}

// A block's 64 output rows of kCols bf16, staged in shared memory: the fragment layout (warp w's
// rows 16w .. + 15, this thread's rows gr and gr + 8, column pairs 8n + 2tc) goes in 4 bytes at a
// time into rows padded to kCols + 8, so the 8 row groups of a warp hit distinct banks; then every
// thread stores whole 16-byte pieces of rows (4-byte stores straight from the fragments cost the
// forward 9% of its time).
template <int kCols>
struct StagedRows {
  static constexpr int kPitch = kCols + 8;  // bf16 per staged row
  static constexpr size_t kBytes = size_t(kBlock) * kPitch * sizeof(bf16);
  bf16* st;  // [kBlock][kPitch], 16-byte aligned

  // Row r (0 .. 63 of the block), columns c and c + 1.
  __device__ __forceinline__ void put(int r, int c, float lo, float hi) const {
    *reinterpret_cast<uint32_t*>(st + r * kPitch + c) = pack_bf16(lo, hi);
  }
  // After a block barrier: row r goes to row_ptr(r) (kCols bf16, 16-byte aligned) unless
  // q0 + r >= S.
  template <class RowPtr>
  __device__ __forceinline__ void store(int q0, int S, RowPtr row_ptr) const {
    constexpr int kPieces = kCols * int(sizeof(bf16)) / 16;  // 16-byte pieces of a row
    for (int p = int(threadIdx.x); p < kBlock * kPieces; p += kThreads) {
      const int r = p / kPieces, c = p % kPieces;
      if (q0 + r < S) *reinterpret_cast<uint4*>(row_ptr(r) + 8 * c) = *reinterpret_cast<const uint4*>(st + r * kPitch + 8 * c);
    }
  }
};

// What the kernels take of the shape: sizes as int (the launchers check they fit), the mask, and
// the score scale 1/sqrt(hd).
struct Dims {
  int B, S, nh, nkv;
  Mask mask;
  float scale;
};

// ---- forward --------------------------------------------------------------------------------

// Block → (b, head, query tile) for the forward and dq kernels: the tile index runs slowest and
// from the last tile down, so the heaviest blocks (most key tiles) start first.
struct RowBlock {
  int b, h, qt;
};

__device__ __forceinline__ RowBlock row_block(const Dims& d, int rows) {
  const int tiles = ceil_div(d.S, rows), heads = d.B * d.nh;
  const int bh = int(blockIdx.x) % heads;
  return {bh / d.nh, bh % d.nh, tiles - 1 - int(blockIdx.x) / heads};
}

// The forward block's shared tiles, each 128-byte swizzled (see the wgmma section): Q [64][64],
// K [2][64][64] (double-buffered) and V [3][2 atom columns][64][64] (triple-buffered: a V tile is
// read one iteration after its K, and the third buffer lets it load as early as its K), from a
// 1024-byte aligned base. 74 KB: 3 blocks fill the 228 KB of an SM.
constexpr int kValueBuffers = 3;
constexpr size_t kForwardSmem = sizeof(bf16) * size_t(kAtomTile * (1 + 2 + 2 * kValueBuffers)) + 1024;

// A block (one warpgroup) owns 64 query rows of one (b, head) and walks the 64-key tiles they see;
// warp w owns rows q0 + 16w .. + 15 in the wgmma accumulators. S = Q Kᵀ is 4 wgmma k-steps of
// m64n64k16 from shared memory; P goes from the score accumulators to A fragments in registers and
// O += P V is 4 k-steps of m64n128k16 with V MN-major in shared memory.
__global__ void __launch_bounds__(kThreads, 3)
    flash_forward_kernel(bf16* __restrict__ out, float* __restrict__ lse, const __grid_constant__ CUtensorMap q_map,
                   const __grid_constant__ CUtensorMap k_map, const __grid_constant__ CUtensorMap v_map, Dims d) {
  const int S = d.S;
  const RowBlock rb = row_block(d, kBlock);
  const int b = rb.b, h = rb.h, g = h / (d.nh / d.nkv), q0 = rb.qt * kBlock;
  const float scale_log2 = d.scale * kLog2e;

  unsigned char* smem = swizzle_aligned_smem();
  bf16* qs = reinterpret_cast<bf16*>(smem);  // [64][64] the block's query rows
  bf16* ks = qs + kAtomTile;                 // [2][64][64] key tiles
  bf16* vs = ks + 2 * kAtomTile;             // [3][2][64][64] value tiles (two atom columns)

  // K and V tiles have separate buffers and barriers: K of tile i is read by S_i in iteration i,
  // V of tile i by P_i V_i in iteration i + 1 (the software pipeline below). Tile i's K sits in K
  // buffer i % 2, its V in V buffer i % 3.
  __shared__ uint64_t full[2 + kValueBuffers];
  init_tile_barriers(full);
  uint64_t* full_k = full;      // full_k[buf]: key tile buf (and, first, the query tile) has landed
  uint64_t* full_v = full + 2;  // full_v[buf]: value tile buf has landed
  const KeyTiles tiles = key_tiles(rb.qt, d.mask);
  auto load_values = [&](int i) {  // V of tile i (thread 0)
    const int buf = i % kValueBuffers;
    mbarrier_arrive_expect(&full_v[buf], 2 * kAtomBytes);
    load_tile<2>(vs + buf * 2 * kAtomTile, v_map, g * kVd, tiles.tile(i) * kBlock, b, &full_v[buf]);
  };
  if (threadIdx.x == 0) {
    mbarrier_arrive_expect(&full_k[0], 2 * kAtomBytes);
    load_tile<1>(qs, q_map, h * kHd, q0, b, &full_k[0]);
    load_tile<1>(ks, k_map, g * kHd, tiles.tile(0) * kBlock, b, &full_k[0]);
    load_values(0);
  }

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int gr = lane / 4, tc = lane % 4;  // fragment row group, column pair
  const int wq0 = q0 + warp * 16;          // the warp's first row
  const int row0 = wq0 + gr;               // this thread's rows: row0 and row0 + 8
  const uint64_t q_desc = sw128_desc(qs, 0);
  const float slack = kRescaleLog2 / scale_log2;  // in raw score units; m + slack = −inf while m is

  // Online softmax per row r (rows row0 and row0 + 8): running max m of the raw scores, this
  // thread's part of Σ exp(score − m) (the 4 threads of a row are summed at the end), and
  // o = Σ exp(score − m)·v over the row's columns 8n + 2tc, + 1.
  float o[16][4];
#pragma unroll
  for (int n = 0; n < 16; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  uint32_t pf[4][4];  // P of the previous tile as A fragments (k-steps over its keys)

  // Tile i's scores (sc, from S_i) become probabilities: the mask, the running max, the exps
  // against m, their sums into l. Returns whether the running max moved; o must then be scaled by
  // alpha (l already is).
  auto softmax = [&](float (&sc)[8][4], int i, float (&alpha)[2]) -> bool {
    const int k0 = tiles.tile(i) * kBlock;
    if (!tile_unmasked(wq0, 16, k0, d.mask)) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (!allows(row0 + 8 * (e >> 1), k0 + 8 * j + 2 * tc + (e & 1), d.mask)) sc[j][e] = -INFINITY;
        }
      }
    }
    // The running max moves only when a row's new max exceeds it by more than kRescaleLog2 (in
    // log2 units): until then the exps are taken against the stale max (values up to 2^8, exact
    // in fp32 and as bf16 operands) and the 64 accumulator multiplies of the rescale are skipped.
    // Warp-uniform, so a skipped rescale skips its instructions; the result is the same function,
    // since o, l and the lse all refer to the same m.
    float mx[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float t[8];  // a tree, not a chain of 16 dependent maxima
#pragma unroll
      for (int j = 0; j < 8; ++j) t[j] = fmaxf(sc[j][2 * r], sc[j][2 * r + 1]);
#pragma unroll
      for (int w = 4; w > 0; w /= 2)
#pragma unroll
        for (int j = 0; j < w; ++j) t[j] = fmaxf(t[j], t[j + w]);
      mx[r] = fmaxf(t[0], __shfl_xor_sync(0xffffffffu, t[0], 1));  // the 4 threads of the row
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    }
    const bool rescale = __any_sync(0xffffffffu, mx[0] > m[0] + slack || mx[1] > m[1] + slack);
    if (rescale) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const float m_new = fmaxf(m[r], mx[r]);
        // A row that has seen only masked keys keeps m = −inf: alpha is then exp2(−inf) = 0, never
        // exp2(−inf + inf) = NaN.
        alpha[r] = m_new == -INFINITY ? 1.f : exp2_approx((m[r] - m_new) * scale_log2);
        m[r] = m_new;
        l[r] *= alpha[r];
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const float base = m[r] == -INFINITY ? 0.f : m[r] * scale_log2;  // all scores −inf: exps 0
#pragma unroll
      for (int j = 0; j < 8; ++j) {
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          sc[j][e] = exp2_approx(fmaf(sc[j][e], scale_log2, -base));
          l[r] += sc[j][e];
        }
      }
    }
    return rescale;
  };
  auto issue_scores = [&](float (&sc)[8][4], int i) {  // S_i = Q K_iᵀ, committed as one group
    mbarrier_wait(&full_k[i & 1], (i >> 1) & 1);
    const uint64_t k_desc = sw128_desc(ks + (i & 1) * kAtomTile, 0);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_64x64_ss(sc, q_desc + k_step(kk), k_desc + k_step(kk), kk > 0);
    wgmma_commit();
  };
  auto issue_values = [&](int i) {  // O += P_i V_i (P_i in pf), committed as one group
    const int buf = i % kValueBuffers;
    mbarrier_wait(&full_v[buf], (i / kValueBuffers) & 1);
    const uint64_t v_desc = sw128_desc(vs + buf * 2 * kAtomTile, kAtomTile * sizeof(bf16));
    fence_accumulators(o);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_64x128_rs(o, pf[kk], v_desc + mn_step(kk));
    wgmma_commit();
  };
  // Key tile i + 1 (K and V; thread 0), into buffers no warp reads any more.
  auto load_next = [&](int i) {
    if (threadIdx.x != 0 || i + 1 >= tiles.n) return;
    mbarrier_arrive_expect(&full_k[(i + 1) & 1], kAtomBytes);
    load_tile<1>(ks + ((i + 1) & 1) * kAtomTile, k_map, g * kHd, tiles.tile(i + 1) * kBlock, b, &full_k[(i + 1) & 1]);
    load_values(i + 1);
  };

  // Software pipeline (FlashAttention-3's intra-warpgroup overlap): iteration i issues S_i = Q K_iᵀ
  // and then O += P_{i−1} V_{i−1}, waits for S_i only, and runs the softmax of tile i while the
  // tensor cores still work on P_{i−1} V_{i−1}; a rescale of O waits for that product. The first
  // tile's scores come before the loop and the last tile's P V after it, so the loop body is
  // straight-line wgmma code (ptxas serialises every wgmma of a kernel where a group's issue or
  // wait sits under a condition).
  {
    load_next(0);
    float sc[8][4];  // S_0
    issue_scores(sc, 0);
    wgmma_wait<0>();
    fence_accumulators(sc);
    float alpha[2];
    softmax(sc, 0, alpha);  // o is still zero: no rescale
    scores_to_a(pf, sc);
  }
  for (int i = 1; i < tiles.n; ++i) {
    // Every warp is done with iteration i − 1: K buffer (i + 1) % 2 (last read by S_{i−1}) and V
    // buffer (i + 1) % 3 (last read by P_{i−2} V_{i−2}) may be refilled.
    __syncthreads();
    load_next(i);
    float sc[8][4];  // S_i = Q K_iᵀ: rows row0, row0 + 8; keys k0 + 8j + 2tc, + 1
    issue_scores(sc, i);
    issue_values(i - 1);
    wgmma_wait<1>();  // S_i is in; P_{i−1} V_{i−1} may still run
    fence_accumulators(sc);
    float alpha[2];
    const bool rescale = softmax(sc, i, alpha);
    wgmma_wait<0>();  // P_{i−1} V_{i−1} is done: o and pf may change
    fence_accumulators(o);
    if (rescale) {
#pragma unroll
      for (int r = 0; r < 2; ++r) {
#pragma unroll
        for (int n = 0; n < 16; ++n) o[n][2 * r] *= alpha[r], o[n][2 * r + 1] *= alpha[r];
      }
    }
    scores_to_a(pf, sc);
  }
  issue_values(tiles.n - 1);
  wgmma_wait<0>();
  fence_accumulators(o);

  // out goes through shared memory (the value buffers, free once every warp is done).
  const StagedRows<kVd> staged{vs};
  static_assert(StagedRows<kVd>::kBytes <= kValueBuffers * 2 * kAtomBytes, "staging fits");
  __syncthreads();
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float lt = l[r];
    lt += __shfl_xor_sync(0xffffffffu, lt, 1);
    lt += __shfl_xor_sync(0xffffffffu, lt, 2);
    // The diagonal key is always visible, so lt >= 1 for a row inside the sequence.
    const float inv = 1.f / lt;
    const int row = row0 + 8 * r;
#pragma unroll
    for (int n = 0; n < 16; ++n) staged.put(row - q0, 8 * n + 2 * tc, o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    if (tc == 0 && row < S) lse[(int64_t(b) * d.nh + h) * S + row] = m[r] * d.scale + logf(lt);
  }
  __syncthreads();
  staged.store(q0, S, [&](int r) { return out + ((int64_t(b) * S + q0 + r) * d.nh + h) * kVd; });
}

// ---- backward -------------------------------------------------------------------------------

// D[b, h, i] = dout_i · out_i and lse2[b, h, i] = lse[b, h, i]·log2(e), one warp per query row
// (b·S + i)·nh + h; dout and out [B·S·nh, vd], lane l reads columns 4l .. 4l + 3.
constexpr int kRowWarps = 8;

__global__ void __launch_bounds__(kRowWarps * 32)
    flash_row_dot_kernel(float* __restrict__ D, float* __restrict__ lse2, const bf16* __restrict__ dout,
                   const bf16* __restrict__ out, const float* __restrict__ lse, Dims d) {
  const int64_t row = int64_t(blockIdx.x) * kRowWarps + threadIdx.x / 32;
  if (row >= int64_t(d.B) * d.S * d.nh) return;  // whole warps leave together
  const int lane = int(threadIdx.x) % 32;
  const uint2 a = *reinterpret_cast<const uint2*>(dout + row * kVd + 4 * lane);
  const uint2 c = *reinterpret_cast<const uint2*>(out + row * kVd + 4 * lane);
  const float2 a0 = unpack_bf16(a.x), a1 = unpack_bf16(a.y), c0 = unpack_bf16(c.x), c1 = unpack_bf16(c.y);
  float x = a0.x * c0.x + a0.y * c0.y + a1.x * c1.x + a1.y * c1.y;
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  if (lane == 0) {
    const int64_t h = row % d.nh, bi = row / d.nh, i = bi % d.S, b = bi / d.S;
    const int64_t at = (b * d.nh + h) * d.S + i;
    D[at] = x;
    lse2[at] = lse[at] * kLog2e;
  }
}

// The dq block's shared tiles, 128-byte swizzled: Q [64][64], dO [2 atom columns][64][64], K
// [2][64][64] and V [2][2][64][64] (double-buffered), from a 1024-byte aligned base.
constexpr size_t kDqSmem = sizeof(bf16) * size_t(kAtomTile * (1 + 2 + 2 + 2 * 2)) + 1024;

// dq_i = scale · Σ_j dS_ij k_j with P_ij = exp(scale·q_i·k_j − lse_i), dS_ij = P_ij (dout_i·v_j − D_i).
// The block layout of the forward (one warpgroup, 64 query rows). Per key tile: S = Q Kᵀ (4 wgmma
// m64n64k16) and dP = dO Vᵀ (8 more, over vd) from shared memory in one group, P and dS on the
// accumulators, then dQ += dS K (4 wgmma m64n64k16, dS from registers, K MN-major).
__global__ void __launch_bounds__(kThreads, 3)
    flash_dq_kernel(bf16* __restrict__ dq, const __grid_constant__ CUtensorMap do_map,
              const __grid_constant__ CUtensorMap q_map, const __grid_constant__ CUtensorMap k_map,
              const __grid_constant__ CUtensorMap v_map, const float* __restrict__ lse2, const float* __restrict__ D,
              Dims d) {
  const int S = d.S;
  const RowBlock rb = row_block(d, kBlock);
  const int b = rb.b, h = rb.h, g = h / (d.nh / d.nkv), q0 = rb.qt * kBlock;
  const float scale_log2 = d.scale * kLog2e;

  unsigned char* smem = swizzle_aligned_smem();
  bf16* qs = reinterpret_cast<bf16*>(smem);  // [64][64] the block's query rows
  bf16* dos = qs + kAtomTile;                // [2][64][64] their output gradients
  bf16* ks = dos + 2 * kAtomTile;            // [2][64][64] key tiles
  bf16* vs = ks + 2 * kAtomTile;             // [2][2][64][64] value tiles

  __shared__ uint64_t full[2];  // full[buf]: key tile buf (and, first, the query tiles) has landed
  init_tile_barriers(full);
  const KeyTiles tiles = key_tiles(rb.qt, d.mask);
  // Key tile `tile` (K and both atom columns of V) into buffer buf.
  auto load_keys = [&](int tile, int buf) {
    load_tile<1>(ks + buf * kAtomTile, k_map, g * kHd, tile * kBlock, b, &full[buf]);
    load_tile<2>(vs + buf * 2 * kAtomTile, v_map, g * kVd, tile * kBlock, b, &full[buf]);
  };
  if (threadIdx.x == 0) {
    mbarrier_arrive_expect(&full[0], 6 * kAtomBytes);
    load_tile<1>(qs, q_map, h * kHd, q0, b, &full[0]);
    load_tile<2>(dos, do_map, h * kVd, q0, b, &full[0]);
    load_keys(tiles.tile(0), 0);
  }

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int gr = lane / 4, tc = lane % 4;
  const int row0 = q0 + warp * 16 + gr;  // this thread's rows: row0, row0 + 8
  float lse_r[2], D_r[2];                // lse·log2(e) and D of those rows (0 past the end)
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + 8 * r;
    const int64_t at = (int64_t(b) * d.nh + h) * S + row;
    lse_r[r] = row < S ? lse2[at] : 0.f;
    D_r[r] = row < S ? D[at] : 0.f;
  }
  const uint64_t q_desc = sw128_desc(qs, 0), do_desc = sw128_desc(dos, 0);

  float acc[8][4];  // dq / scale: rows row0, row0 + 8; columns 8n + 2tc, + 1
#pragma unroll
  for (int n = 0; n < 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  for (int i = 0; i < tiles.n; ++i) {
    const int buf = i & 1;
    __syncthreads();  // every warp is done with iteration i − 1: its buffer may be refilled
    if (threadIdx.x == 0 && i + 1 < tiles.n) {
      mbarrier_arrive_expect(&full[buf ^ 1], 3 * kAtomBytes);
      load_keys(tiles.tile(i + 1), buf ^ 1);
    }
    mbarrier_wait(&full[buf], (i >> 1) & 1);  // this iteration's tiles are in
    const int k0 = tiles.tile(i) * kBlock;
    const uint64_t k_desc = sw128_desc(ks + buf * kAtomTile, 0);
    const uint64_t v_desc = sw128_desc(vs + buf * 2 * kAtomTile, 0);

    float p[8][4];   // S, then P: rows row0, row0 + 8; keys k0 + 8j + 2tc, + 1
    float dp[8][4];  // dP = dO Vᵀ, then dS
    scores_and_dp(p, dp, q_desc, k_desc, do_desc, v_desc);

    const bool unmasked = tile_unmasked(q0, kBlock, k0, d.mask);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float x = exp2_approx(fmaf(p[j][e], scale_log2, -lse_r[e >> 1]));
        const float pe = unmasked || allows(row0 + 8 * (e >> 1), k0 + 8 * j + 2 * tc + (e & 1), d.mask) ? x : 0.f;
        dp[j][e] = pe * (dp[j][e] - D_r[e >> 1]);
      }
    }

    uint32_t dsf[4][4];  // dS as A fragments, k-steps over the tile's keys
    scores_to_a(dsf, dp);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_64x64_rs(acc, dsf[kk], k_desc + mn_step(kk));
    wgmma_commit();
    wgmma_wait_all();  // (left running into the next tile, ptxas serialises the wgmmas: C7515)
    fence_accumulators(acc);
  }

  // dq goes through shared memory (the key and value buffers, free once every warp is done).
  const StagedRows<kHd> staged{ks};
  static_assert(StagedRows<kHd>::kBytes <= 6 * kAtomBytes, "staging fits");
  __syncthreads();
#pragma unroll
  for (int r = 0; r < 2; ++r) {
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      staged.put(row0 + 8 * r - q0, 8 * n + 2 * tc, d.scale * acc[n][2 * r], d.scale * acc[n][2 * r + 1]);
    }
  }
  __syncthreads();
  staged.store(q0, S, [&](int r) { return dq + ((int64_t(b) * S + q0 + r) * d.nh + h) * kHd; });
}

// The dk/dv block's shared tiles, 128-byte swizzled: K [64][64], V [2 atom columns][64][64], Q
// [2][64][64] and dO [2][2][64][64] (double-buffered), then lse·log2(e) and D of the queries
// [2][2][64] floats, from a 1024-byte aligned base.
constexpr size_t kDkDvSmem = sizeof(bf16) * size_t(kAtomTile * (1 + 2 + 2 + 2 * 2)) + sizeof(float) * 4 * kBlock + 1024;

// One row of a dk/dv partial: the 64 dk columns then the 128 dv columns, fp32.
constexpr int kPartCols = kHd + kVd;
constexpr int64_t kPartFloats = int64_t(kBlock) * kPartCols;  // one [kBlock, kPartCols] partial

// dv_j += Σ_h Σ_i P_ij dout_i and dk_j += scale · Σ_h Σ_i dS_ij q_i over the query heads h of the
// group and the queries i that see key j. The (head, query tile) pairs that see a key tile, head
// outermost, are cut into `parts` near-equal contiguous ranges; a block (one warpgroup) owns 64
// keys of one (b, KV head) and one range; warp w owns keys k0 + 16w .. + 15. Products are
// transposed (keys are the rows): per pair Sᵀ = K Qᵀ (4 wgmma m64n64k16) and dPᵀ = V dOᵀ (8) from
// shared memory, Pᵀ and dSᵀ on the accumulators, then dV += Pᵀ dO (4 wgmma m64n128k16) and
// dK += dSᵀ Q (4 m64n64k16) with Pᵀ and dSᵀ from registers and dO, Q MN-major. With parts == 1
// the block adds its sums into dk/dv (its keys' one owner); otherwise it writes them, fp32, to its
// slot of `part` [B·nkv, tiles, parts][kBlock, kPartCols] and flash_dkdv_reduce_kernel adds the
// slots in order.
__global__ void __launch_bounds__(kThreads, 2)
    flash_dkdv_kernel(bf16* __restrict__ dk, bf16* __restrict__ dv, float* __restrict__ part,
                const __grid_constant__ CUtensorMap do_map, const __grid_constant__ CUtensorMap q_map,
                const __grid_constant__ CUtensorMap k_map, const __grid_constant__ CUtensorMap v_map,
                const float* __restrict__ lse2, const float* __restrict__ D, Dims d, int parts) {
  const int S = d.S, rep = d.nh / d.nkv;
  const int tiles = ceil_div(S, kBlock), groups = d.B * d.nkv;
  // The first key tiles are seen by the most queries: they start first.
  const int kt = int(blockIdx.x) / (groups * parts), pg = int(blockIdx.x) % (groups * parts);
  const int p = pg / groups, bg = pg % groups;
  const int b = bg / d.nkv, g = bg % d.nkv, k0 = kt * kBlock;
  const float scale_log2 = d.scale * kLog2e;

  unsigned char* smem = swizzle_aligned_smem();
  bf16* ks = reinterpret_cast<bf16*>(smem);  // [64][64] the block's keys
  bf16* vs = ks + kAtomTile;                 // [2][64][64] and values
  bf16* qs = vs + 2 * kAtomTile;             // [2][64][64] query tiles
  bf16* dos = qs + 2 * kAtomTile;            // [2][2][64][64] their output gradients
  float* ls = reinterpret_cast<float*>(dos + 4 * kAtomTile);  // [2][kBlock] lse·log2(e) of the queries
  float* Ds = ls + 2 * kBlock;                                 // [2][kBlock] D of the queries

  const QueryTiles qtiles = query_tiles(kt, tiles, d.mask);
  const int n = rep * qtiles.count;  // (head, query tile) pairs, head outermost
  // This block's range [it0, it1) of them (empty when n < parts).
  const int it0 = int(int64_t(n) * p / parts), it1 = int(int64_t(n) * (p + 1) / parts);
  // Iteration it's query head and first query.
  auto head_of = [&](int it) { return g * rep + it / qtiles.count; };
  auto q0_of = [&](int it) { return (qtiles.first + it % qtiles.count) * kBlock; };
  __shared__ uint64_t full[2];  // full[buf]: query tile buf (and, first, the key tiles) has landed
  init_tile_barriers(full);
  // Iteration it's query rows and their output gradients into buffer buf by TMA (thread 0, on
  // full[buf]), and their lse·log2(e) and D by cp.async: threads 0-63 the lse of the 64 queries,
  // threads 64-127 their D (0 past the end; [B, nh, S] rows are too short for TMA's 16-byte rule).
  auto load_queries = [&](int it, int buf) {
    const int h = head_of(it), q0 = q0_of(it);
    if (threadIdx.x == 0) {
      load_tile<1>(qs + buf * kAtomTile, q_map, h * kHd, q0, b, &full[buf]);
      load_tile<2>(dos + buf * 2 * kAtomTile, do_map, h * kVd, q0, b, &full[buf]);
    }
    const int t = int(threadIdx.x), r = t % kBlock;
    const float* src = (t < kBlock ? lse2 : D) + (int64_t(b) * d.nh + h) * S;
    float* dst = (t < kBlock ? ls : Ds) + buf * kBlock;
    const bool valid = q0 + r < S;
    copy_async<4>(dst + r, valid ? src + q0 + r : src, valid);
    copy_commit();
  };

  if (it0 < it1) {  // an empty range reads nothing
    if (threadIdx.x == 0) {
      mbarrier_arrive_expect(&full[0], 6 * kAtomBytes);
      load_tile<1>(ks, k_map, g * kHd, k0, b, &full[0]);
      load_tile<2>(vs, v_map, g * kVd, k0, b, &full[0]);
    }
    load_queries(it0, 0);
  }

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int gr = lane / 4, tc = lane % 4;
  const int key0 = k0 + warp * 16 + gr;  // this thread's keys: key0, key0 + 8
  const uint64_t k_desc = sw128_desc(ks, 0), v_desc = sw128_desc(vs, 0);

  float dka[8][4], dva[16][4];  // dk / scale and dv of the warp's 16 keys; columns 8c + 2tc, + 1
#pragma unroll
  for (int c = 0; c < 8; ++c) dka[c][0] = dka[c][1] = dka[c][2] = dka[c][3] = 0.f;
#pragma unroll
  for (int c = 0; c < 16; ++c) dva[c][0] = dva[c][1] = dva[c][2] = dva[c][3] = 0.f;

  for (int it = it0; it < it1; ++it) {
    const int buf = (it - it0) & 1;
    copy_wait();  // this thread's lse / D of iteration it have landed
    __syncthreads();      // everyone's have, and every warp is done with iteration it − 1's buffer
    if (it + 1 < it1) {
      if (threadIdx.x == 0) mbarrier_arrive_expect(&full[buf ^ 1], 3 * kAtomBytes);
      load_queries(it + 1, buf ^ 1);
    }
    mbarrier_wait(&full[buf], ((it - it0) >> 1) & 1);  // this iteration's tiles are in
    const int q0 = q0_of(it);
    const bool unmasked = tile_unmasked(q0, kBlock, k0, d.mask);
    const bf16* qt = qs + buf * kAtomTile;       // [64][64] the pair's query rows
    const bf16* ot = dos + buf * 2 * kAtomTile;  // [2][64][64] their output gradients
    const float* lt = ls + buf * kBlock;         // [64]
    const float* Dt = Ds + buf * kBlock;         // [64]
    const uint64_t q_desc = sw128_desc(qt, 0), do_desc = sw128_desc(ot, kAtomTile * sizeof(bf16));

    // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (64 keys x 64 queries each).
    float pt[8][4];  // Sᵀ, then Pᵀ: keys key0, key0 + 8; queries q0 + 8j + 2tc, + 1
    float ds[8][4];  // dPᵀ, then dSᵀ
    scores_and_dp(pt, ds, k_desc, q_desc, v_desc, do_desc);

#pragma unroll
    for (int j = 0; j < 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = 8 * j + 2 * tc + (e & 1);  // query q0 + c
        const float x = exp2_approx(fmaf(pt[j][e], scale_log2, -lt[c]));
        pt[j][e] = unmasked || allows(q0 + c, key0 + 8 * (e >> 1), d.mask) ? x : 0.f;
        ds[j][e] = pt[j][e] * (ds[j][e] - Dt[c]);
      }
    }

    // dV += Pᵀ dO and dK += dSᵀ Q over the 64 queries (4 k-steps each).
    uint32_t pf[4][4], dsf[4][4];
    scores_to_a(pf, pt);
    scores_to_a(dsf, ds);
    fence_accumulators(dva);
    fence_accumulators(dka);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_64x128_rs(dva, pf[kk], do_desc + mn_step(kk));
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) wgmma_64x64_rs(dka, dsf[kk], q_desc + mn_step(kk));
    wgmma_commit();
    wgmma_wait_all();
    fence_accumulators(dva);
    fence_accumulators(dka);
  }

  if (parts > 1) {
    // The slot of (b, g, kt, p); rows past the sequence end are written too (never read).
    float* slot = part + ((int64_t(bg) * tiles + kt) * parts + p) * kPartFloats;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float* prow = slot + (warp * 16 + gr + 8 * r) * kPartCols + 2 * tc;  // columns 8c + 2tc, + 1
#pragma unroll
      for (int c = 0; c < 8; ++c) {
        *reinterpret_cast<float2*>(prow + 8 * c) = make_float2(d.scale * dka[c][2 * r], d.scale * dka[c][2 * r + 1]);
      }
#pragma unroll
      for (int c = 0; c < 16; ++c) {
        *reinterpret_cast<float2*>(prow + kHd + 8 * c) = make_float2(dva[c][2 * r], dva[c][2 * r + 1]);
      }
    }
    return;
  }

  // Each (key, column) has this one owner: add the sums into the accumulated gradients.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int key = key0 + 8 * r;
    if (key >= S) continue;
    const int64_t at = (int64_t(b) * S + key) * d.nkv + g;                    // key row of this KV head
    bf16* dkr = dk + at * kHd + 2 * tc;  // columns 8c + 2tc, + 1
    bf16* dvr = dv + at * kVd + 2 * tc;
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      uint32_t* x = reinterpret_cast<uint32_t*>(dkr + 8 * c);
      const float2 old = unpack_bf16(*x);
      *x = pack_bf16(old.x + d.scale * dka[c][2 * r], old.y + d.scale * dka[c][2 * r + 1]);
    }
#pragma unroll
    for (int c = 0; c < 16; ++c) {
      uint32_t* x = reinterpret_cast<uint32_t*>(dvr + 8 * c);
      const float2 old = unpack_bf16(*x);
      *x = pack_bf16(old.x + dva[c][2 * r], old.y + dva[c][2 * r + 1]);
    }
  }
}

// dk/dv (+=) the sum of the `parts` partials of each key row, in part order: one thread per 4
// columns of a row (b, j, g) of the concatenated [dk | dv] columns (kPartCols / 4 = 48 per row),
// so a warp reads and writes whole rows.
constexpr int kReduceThreads = 256;

__global__ void __launch_bounds__(kReduceThreads)
    flash_dkdv_reduce_kernel(bf16* __restrict__ dk, bf16* __restrict__ dv, const float* __restrict__ part, Dims d,
                       int parts) {
  constexpr int kQuads = kPartCols / 4;
  const int64_t x = int64_t(blockIdx.x) * kReduceThreads + threadIdx.x;
  if (x >= int64_t(d.B) * d.S * d.nkv * kQuads) return;
  const int c = int(x % kQuads) * 4;  // first column in [dk | dv]
  const int64_t row = x / kQuads;     // (b·S + j)·nkv + g, the row of dk and dv
  const int g = int(row % d.nkv), j = int(row / d.nkv % d.S), b = int(row / d.nkv / d.S);
  const int tiles = ceil_div(d.S, kBlock), kt = j / kBlock;
  const float* src = part + ((int64_t(b) * d.nkv + g) * tiles + kt) * parts * kPartFloats +
                     (j % kBlock) * kPartCols + c;  // slot p at src + p·kPartFloats
  float4 sum = *reinterpret_cast<const float4*>(src);
  for (int p = 1; p < parts; ++p) {
    const float4 y = *reinterpret_cast<const float4*>(src + p * kPartFloats);
    sum.x += y.x, sum.y += y.y, sum.z += y.z, sum.w += y.w;
  }
  bf16* dst = c < kHd ? dk + row * kHd + c : dv + row * kVd + (c - kHd);  // 4 bf16, 8-byte aligned
  uint2 old = *reinterpret_cast<const uint2*>(dst);
  const float2 a = unpack_bf16(old.x), e = unpack_bf16(old.y);
  old.x = pack_bf16(a.x + sum.x, a.y + sum.y);
  old.y = pack_bf16(e.x + sum.z, e.y + sum.w);
  *reinterpret_cast<uint2*>(dst) = old;
}

// ---- host -----------------------------------------------------------------------------------

constexpr int64_t kMaxS = int64_t(1) << 30;  // positions and tile sums stay in int

// Why the kernels do not take the shape, or nullptr.
const char* unsupported(const AttentionShape& s, int64_t ldv) {
  if (s.B < 0 || s.S < 0 || s.nh < 0) return "negative size";
  if (s.nkv <= 0 || s.nh % s.nkv != 0) return "nh is not a multiple of a positive nkv";
  if (s.hd != kFlashHeadDim) return "hd is not 64";
  if (s.vd != kFlashValueDim) return "vd is not 128";
  if (ldv < s.nkv * s.vd) return "ldv is below nkv·vd";
  if (ldv % 8 != 0) return "ldv is not a multiple of 8 (v rows are read in 16-byte pieces)";
  if (!s.global && (s.window < 0 || s.meta < 0)) return "negative window or meta";
  if (s.S > kMaxS) return "S is above 2^30";
  // Blocks of the largest grids (the D kernel: 8 rows each, so at most 8 per (b, head, query
  // tile) of the dq grid; the dk/dv reduction: 256 threads over 48 per key row, below the D
  // kernel's); B, nh, S fit in int below it. The dk/dv grid has at most kMaxParts ≤ 8 blocks per
  // (b, KV head, key tile), and a part's iteration bounds n·parts ≤ nh·tiles·8 stay in int.
  if (s.B * s.nh * ((s.S + kBlock - 1) / kBlock) * 8 > int64_t(0x7fffffff)) return "too many blocks for the grid";
  return nullptr;
}

// How many parts the dk/dv work of each key tile is cut into (1: no partials, no reduction).
// Enough blocks to fill the GPU twice over (kFillBlocks, 2 waves of 2 blocks on 132 SMs), and no
// block longer than the ideal per-slot share of all the work (the meta-token key tiles of a local
// layer are seen by every query tile: v1's critical path). At most kMaxParts, and no more than
// the heaviest key tile's (head, query tile) pairs. A function of the shape only, so the partial
// sums, and the bits of dk/dv, do not depend on the device. Each part costs a [64, 192] fp32
// partial written and read again: with the wgmma kernel (v3) the measured best is 2 parts at B 2,
// S 2176 (local and global; v2's rule chose 4) and 1 part at the shipped micro-batches (5, 10 and
// 16 rows; v2's rule chose 2 at 5 rows), which this rule gives (docs/PERF.md).
constexpr int kMaxParts = 4;
constexpr int64_t kSlots = 264;        // block slots of an H100 (132 SMs x 2): a tuning constant
constexpr int64_t kFillBlocks = 2 * kSlots;

int dkdv_parts(const AttentionShape& s) {
  // Shapes the kernels do not take (their workspace is v1's) and empty ones need no partials.
  if (unsupported(s, s.nkv * s.vd) != nullptr || s.B == 0 || s.S == 0 || s.nh == 0) return 1;
  const Mask m = make_mask(s);
  const int tiles = int((s.S + kBlock - 1) / kBlock);
  int64_t total = 0, heaviest = 0;  // (query tile) counts over the key tiles, and their maximum
  for (int kt = 0; kt < tiles; ++kt) {
    const int64_t c = query_tiles(kt, tiles, m).count;
    total += c, heaviest = std::max(heaviest, c);
  }
  const int64_t base = s.B * s.nkv * tiles;  // blocks with one part each
  const int64_t fill = (kFillBlocks + base - 1) / base;
  // heaviest / parts <= total · B·nkv / kSlots, per (b, KV head) the rep factor cancels.
  const int64_t share = s.B * s.nkv * total;
  const int64_t balance = (heaviest * kSlots + share - 1) / share;
  const int64_t cap = std::min<int64_t>(kMaxParts, (s.nh / s.nkv) * heaviest);
  return int(std::max<int64_t>(1, std::min(cap, std::max(fill, balance))));
}

// Validates the shape (hymba::fail naming op and values); false when there is nothing to compute.
bool check_shape(const AttentionShape& s, int64_t ldv, const char* op) {
  if (const char* why = unsupported(s, ldv)) {
    fail(op, ": ", why, " (B ", s.B, ", S ", s.S, ", nh ", s.nh, ", nkv ", s.nkv, ", hd ", s.hd, ", vd ",
         s.vd, ", ldv ", ldv, ", window ", s.window, ", meta ", s.meta,
         "; flash attention takes hd = 64, vd = 128, ldv % 8 == 0)");
  }
  return s.B > 0 && s.S > 0 && s.nh > 0;
}

// bf16 tensors move in 16-byte pieces (q, k, v, dout by TMA) or 4- and 8-byte pieces; lse and the
// workspace in floats.
void check_aligned(const void* p, int bytes, const char* name, const char* op) {
  if (!aligned(p, size_t(bytes))) fail(op, ": ", name, " (", p, ") is not ", bytes, "-byte aligned");
}

Dims dims(const AttentionShape& s) {
  return {int(s.B), int(s.S), int(s.nh), int(s.nkv), make_mask(s), float(1.0 / std::sqrt(double(s.hd)))};
}

unsigned blocks(int64_t n) { return unsigned(n); }  // unsupported() keeps every grid below 2^31

}  // namespace

bool flash_attention_supports(const AttentionShape& s, int64_t ldv) { return unsupported(s, ldv) == nullptr; }
bool flash_attention_supports(const AttentionShape& s) { return flash_attention_supports(s, s.nkv * s.vd); }

template <class T>
void flash_attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, int64_t ldv,
                             const AttentionShape& s, cudaStream_t stream) {
  static_assert(std::is_same_v<T, bf16>, "flash attention is bf16 only");
  const char* op = "flash_attention_forward";
  if (!check_shape(s, ldv, op)) return;
  check_aligned(out, 16, "out", op), check_aligned(lse, 4, "lse", op), check_aligned(q, 16, "q", op);
  check_aligned(k, 16, "k", op), check_aligned(v, 16, "v", op);
  const int64_t tiles = (s.S + kBlock - 1) / kBlock;
  const CUtensorMap q_map = bf16_tile_map(q, s.nh * kHd, s.S, s.B, s.nh * kHd, kBlock, "flash_attention_forward q");
  const CUtensorMap k_map = bf16_tile_map(k, s.nkv * kHd, s.S, s.B, s.nkv * kHd, kBlock, "flash_attention_forward k");
  const CUtensorMap v_map = bf16_tile_map(v, s.nkv * kVd, s.S, s.B, ldv, kBlock, "flash_attention_forward v");
  allow_smem(flash_forward_kernel, kForwardSmem);
  flash_forward_kernel<<<blocks(s.B * s.nh * tiles), kThreads, kForwardSmem, stream>>>(out, lse, q_map, k_map, v_map,
                                                                                      dims(s));
  HYMBA_CUDA_CHECK_LAUNCH();
}

// [B·nkv, tiles, parts][kBlock, kPartCols] dk/dv partials when parts > 1 (first, so they stay
// 16-byte aligned), then D and lse·log2(e), [B, nh, S] each.
int64_t dkdv_partial_floats(const AttentionShape& s) {
  const int parts = dkdv_parts(s);
  return parts > 1 ? s.B * s.nkv * ((s.S + kBlock - 1) / kBlock) * parts * kPartFloats : 0;
}

int64_t flash_attention_backward_workspace(const AttentionShape& s) {
  return dkdv_partial_floats(s) + 2 * s.B * s.nh * s.S;
}

int flash_attention_dkdv_parts(const AttentionShape& s) { return dkdv_parts(s); }

template <class T>
void flash_attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                              int64_t ldv, const T* out, const float* lse, const AttentionShape& s,
                              float* workspace, cudaStream_t stream) {
  static_assert(std::is_same_v<T, bf16>, "flash attention is bf16 only");
  const char* op = "flash_attention_backward";
  if (!check_shape(s, ldv, op)) return;
  check_aligned(dq, 16, "dq", op), check_aligned(dk, 16, "dk", op), check_aligned(dv, 16, "dv", op);
  check_aligned(dout, 16, "dout", op), check_aligned(q, 16, "q", op), check_aligned(k, 16, "k", op);
  check_aligned(v, 16, "v", op), check_aligned(out, 16, "out", op), check_aligned(lse, 4, "lse", op);
  check_aligned(workspace, 16, "workspace", op);
  const Dims d = dims(s);
  const int parts = dkdv_parts(s);
  float* part = workspace;                             // [B·nkv, tiles, parts][kBlock, kPartCols] if parts > 1
  float* D = workspace + dkdv_partial_floats(s);       // [B, nh, S]
  float* lse2 = D + s.B * s.nh * s.S;                  // [B, nh, S]
  const int64_t tiles = (s.S + kBlock - 1) / kBlock;

  const CUtensorMap do_map = bf16_tile_map(dout, s.nh * kVd, s.S, s.B, s.nh * kVd, kBlock, "flash_attention_backward dout");
  const CUtensorMap q_map = bf16_tile_map(q, s.nh * kHd, s.S, s.B, s.nh * kHd, kBlock, "flash_attention_backward q");
  const CUtensorMap k_map = bf16_tile_map(k, s.nkv * kHd, s.S, s.B, s.nkv * kHd, kBlock, "flash_attention_backward k");
  const CUtensorMap v_map = bf16_tile_map(v, s.nkv * kVd, s.S, s.B, ldv, kBlock, "flash_attention_backward v");

  const int64_t rows = s.B * s.S * s.nh;
  flash_row_dot_kernel<<<blocks((rows + kRowWarps - 1) / kRowWarps), kRowWarps * 32, 0, stream>>>(D, lse2, dout, out,
                                                                                           lse, d);
  HYMBA_CUDA_CHECK_LAUNCH();

  allow_smem(flash_dq_kernel, kDqSmem);
  flash_dq_kernel<<<blocks(s.B * s.nh * tiles), kThreads, kDqSmem, stream>>>(dq, do_map, q_map, k_map, v_map, lse2, D,
                                                                             d);
  HYMBA_CUDA_CHECK_LAUNCH();

  allow_smem(flash_dkdv_kernel, kDkDvSmem);
  flash_dkdv_kernel<<<blocks(s.B * s.nkv * tiles * parts), kThreads, kDkDvSmem, stream>>>(dk, dv, part, do_map, q_map, k_map,
                                                                                   v_map, lse2, D, d, parts);
  HYMBA_CUDA_CHECK_LAUNCH();
  if (parts > 1) {
    const int64_t threads = s.B * s.S * s.nkv * (kPartCols / 4);
    flash_dkdv_reduce_kernel<<<blocks((threads + kReduceThreads - 1) / kReduceThreads), kReduceThreads, 0, stream>>>(
        dk, dv, part, d, parts);
    HYMBA_CUDA_CHECK_LAUNCH();
  }
}

template void flash_attention_forward<bf16>(bf16*, float*, const bf16*, const bf16*, const bf16*, int64_t,
                                            const AttentionShape&, cudaStream_t);
template void flash_attention_backward<bf16>(bf16*, bf16*, bf16*, const bf16*, const bf16*, const bf16*,
                                             const bf16*, int64_t, const bf16*, const float*,
                                             const AttentionShape&, float*, cudaStream_t);

}  // namespace hymba::cuda
