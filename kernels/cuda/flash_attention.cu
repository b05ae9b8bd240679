// Flash attention (FlashAttention-2 style) for hd = 64, vd = 128, bf16, on mma.sync tensor cores.
//
// Tiling. Every kernel works on 64 x 64 (query x key) tiles with 4 warps (128 threads); a warp owns
// 16 rows of its block's 64, so each product is a run of m16n8k16 MMAs (bf16 in, fp32 accumulate)
// over a warp slab. MMA counts are per warp and per 64 x 64 tile:
//   forward  block (b, h, 64 queries), per key tile: S = Q Kᵀ (16x64, 32 MMAs), online softmax in
//            fp32 on the accumulators, O += P V (16x128, 64 MMAs). Writes out (bf16) and lse.
//   dq       block (b, h, 64 queries), per key tile: S = Q Kᵀ (32), P = exp(S − lse), dP = dO Vᵀ
//            (64), dS = P (dP − D), dQ += dS K (32).
//   dk/dv    block (b, KV head g, 64 keys), per (query head of the group, query tile that sees the
//            keys), in two halves of 32 queries: Sᵀ = K Qᵀ (32), Pᵀ, dPᵀ = V dOᵀ (64), dSᵀ,
//            dV += Pᵀ dO (64), dK += dSᵀ Q (32). Each dk/dv element has one owner, which adds
//            its fp32 sum into the bf16 gradient (read-modify-write), so there are no atomics.
//   D        D_i = dout_i · out_i and lse_i·log2(e), one warp per row, into the workspace.
// The 4 warps of a block share its K/V (or Q/dO) tiles in shared memory; the block's own rows
// (forward: Q; dq: Q and dO) are read once into registers as MMA A fragments.
//
// Fragments. Operands move shared → registers with ldmatrix.x4 (.trans for B operands stored with
// n contiguous: V in P·V, dO in Pᵀ·dO, Q in dSᵀ·Q, K in dS·K). An accumulator tile of scores
// becomes the A operand of the next product without a trip through shared memory: the C fragments
// of n-tiles 2k and 2k+1 (16 rows x 16 columns) are exactly the A fragment of k-step k once
// packed to bf16x2 (FlashAttention-2's register reuse). Shared rows are padded by 16 bytes (row
// strides 144 and 272 bytes) so the 8 row addresses of every ldmatrix phase land on distinct
// banks. The lane offsets and loop shapes are checked on the host by an emulator of the PTX
// fragment tables (not part of the build).
//
// Pipeline. K/V tiles (forward, dq) and Q/dO/lse/D tiles (dk/dv) are double-buffered with
// cp.async: at the top of iteration i the block waits for tile i, synchronises once, issues tile
// i + 1 into the other buffer (read during iteration i − 1, which every warp has finished), then
// computes on tile i. Rows past the sequence end are zero-filled (cp.async with source size 0),
// so a padded query row or key row contributes exact zeros; such rows are never stored.
//
// Masks. A block visits only the key tiles that hold a key some of its rows may see: under the
// global mask the tiles up to the diagonal; under the local mask the tiles holding meta tokens
// [0, M) and the tiles meeting [q0 − W, q1], never the masked middle (key_tiles; dk/dv uses the
// mirror image, query_tiles). A tile whose every (query, key) pair is allowed (tile_unmasked)
// skips the per-element test; the others apply attention_allows per element, the same function
// as the CPU reference. The forward visits the diagonal tile first, so every row's running max is
// finite from the first tile on (a guard keeps exp2(−inf − −inf) from ever being evaluated).
// Softmax uses exp2 of scores prescaled by scale·log2(e); lse is stored with the natural log.
//
// Work order: forward and dq blocks start from the last query tiles (the heaviest under the
// causal mask), dk/dv blocks from the first key tiles (seen by the most queries; under the local
// mask the meta-token tiles are seen by every later query). No split of heavy blocks: a block
// per (b, KV head, key tile) keeps dk/dv single-writer without partial buffers, at a price: few
// blocks (B·nkv·S/64 = 340 at the 1.5B training shape, 1.3 waves of 2 blocks per SM) and, under
// the local mask at long S, meta-token blocks that each carry all S/64 query tiles.
//
// Numerics: P and dS are rounded to bf16 as MMA operands (as in FlashAttention-2); row sums,
// max, lse, D and every accumulator are fp32. Deterministic: fixed iteration order, no atomics.
//
// Predicted throughput on an H100 SXM (written before any measurement; TFLOP/s counted from the
// unmasked pairs as in bench/attention.cpp, B 2, nh 25, nkv 5). Assumptions: mma.sync peaks near
// 2/3 of the 989 TFLOP/s dense figure, these kernels reach about half of that (8 warps per SM,
// exp2 on the MUFU pipe, ldmatrix traffic of 16-row warp slabs), the visited tiles hold ~92% useful
// pairs (local) and the backward executes 1280 FLOPs per pair for the 896 counted (dq recomputes
// S and dP). Local, S = 2176: forward ~300, backward ~180, fwd+bwd ~200 TFLOP/s; global, S = 2176
// a little lower (half-masked diagonal tiles); S = 8320: forward ~310, backward ~190 global and
// ~150 local (the meta-token dk/dv blocks become the critical path). That misses the issue's
// 350 / 250 goal; closing the gap likely needs wgmma (sm_90a) or a dk/dv split with partial sums.
//
// Resource usage (nvcc 13.0, -O3 -arch=sm_90 --resource-usage): no spills, no stack.
//   forward_kernel  240 registers, 62464 B dynamic shared (2 blocks / SM)
//   dq_kernel       250 registers, 79872 B dynamic shared (2 blocks / SM)
//   dkdv_kernel     255 registers, 80896 B dynamic shared (2 blocks / SM)
//   row_dot_kernel   26 registers, no shared memory
// ptxas spends every register __launch_bounds__(128, 2) allows on early ldmatrix loads; with
// (128, 3) the forward spills (the live set is ~170 registers).
#include "cuda/flash_attention.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "attention_mask.h"
#include "core/cuda_check.h"
#include "core/error.h"
#include "cuda/dtype.cuh"

namespace hymba::cuda {

namespace {

constexpr int kHd = int(kFlashHeadDim);   // q/k head dim
constexpr int kVd = int(kFlashValueDim);  // v head dim
constexpr int kBlock = 64;                // query rows per block = keys per tile (one size for both)
constexpr int kWarps = 4;                 // 16 rows each
constexpr int kThreads = kWarps * 32;
constexpr int kLdK = kHd + 8;             // shared row stride (bf16) of hd-wide tiles: 144 bytes
constexpr int kLdV = kVd + 8;             // shared row stride of vd-wide tiles: 272 bytes
constexpr int kTileK = kBlock * kLdK;     // bf16 of one [kBlock, hd] tile
constexpr int kTileV = kBlock * kLdV;     // bf16 of one [kBlock, vd] tile
constexpr float kLog2e = 1.4426950408889634f;

static_assert(kBlock == 16 * kWarps, "a warp owns 16 rows of the block");
static_assert(kHd % 16 == 0 && kVd % 16 == 0, "head dims are whole MMA k-steps");

// ---- tile lists (host and device: the fragment emulator checks them on the host) ------------
// Positions are int: the launchers take S <= 2^30, so every position of a padded tile and every
// sum below fits.

HYMBA_HOST_DEVICE inline int ceil_div(int a, int b) { return (a + b - 1) / b; }

// The mask of a layer with window and meta clamped to [0, S + kBlock]: for positions below
// S + kBlock (every row of every tile) attention_allows gives the same answers as with the
// shape's own values, and sums stay in int.
struct Mask {
  bool global;
  int window, meta;
};

HYMBA_HOST_DEVICE inline Mask make_mask(const AttentionShape& s) {
  const int64_t top = s.S + kBlock;
  auto clamp = [&](int64_t x) { return int(x < 0 ? 0 : x > top ? top : x); };
  return {s.global, clamp(s.window), clamp(s.meta)};
}

HYMBA_HOST_DEVICE inline bool allows(int q, int k, const Mask& m) {
  return attention_allows(q, k, m.global, m.window, m.meta);
}

// Whether every (query, key) pair of the query tile starting at q0 and the key tile starting at
// k0 is allowed, so the per-element mask can be skipped. Pairs with a query past the sequence end
// count too (they are never stored), and a key past the end is above every valid query, so an
// unmasked tile never holds one.
HYMBA_HOST_DEVICE inline bool tile_unmasked(int q0, int k0, const Mask& m) {
  const int k1 = k0 + kBlock - 1, q1 = q0 + kBlock - 1;
  if (k1 > q0) return false;  // some key above some query
  return m.global || k1 < m.meta || q1 - k0 <= m.window;
}

// The key tiles query tile qt visits, as iterations i = 0 .. n − 1: first the tiles meeting the
// window, qt (the diagonal) down to start2, then the meta-token tiles meta − 1 down to 0 that the
// window range does not already hold. A key tile outside both holds no visible key for any row.
struct KeyTiles {
  int qt;      // the diagonal tile
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

// ---- ldmatrix lane addresses (host and device) --------------------------------------------------
// ldmatrix.x4 loads four 8x8 bf16 matrices; lanes 8m .. 8m + 7 give the row addresses of matrix m,
// and register m of every lane receives its part of matrix m: row lane/4, columns 2·(lane%4) and
// + 1 (with .trans: column lane/4, rows 2·(lane%4) and + 1). The mma.m16n8k16 fragments are
//   A (16x16, row-major):  reg 0 = (row g, cols 2t, 2t+1), reg 1 = (row g+8, cols 2t..),
//                          reg 2 = (row g, cols 2t+8..), reg 3 = (row g+8, cols 2t+8..)
//   B (16x8, k x n):       reg 0 = (k 2t, 2t+1; n g), reg 1 = (k 2t+8, 2t+9; n g)
//   C (16x8, fp32):        c0, c1 = (row g, cols 2t, 2t+1), c2, c3 = (row g+8, cols 2t, 2t+1)
// with g = lane / 4 and t = lane % 4. The offsets below are (row, column) of the stored matrix,
// relative to the 16x16 block being loaded.
struct LaneOffset {
  int row, col;
};

// A operand, stored row-major [m][k]: matrices (rows 0-7, k 0-7), (rows 8-15, k 0-7),
// (rows 0-7, k 8-15), (rows 8-15, k 8-15) → regs 0..3 of the A fragment.
HYMBA_HOST_DEVICE inline LaneOffset a_offset(int lane) {
  return {(lane & 7) + 8 * ((lane >> 3) & 1), 8 * (lane >> 4)};
}
// B operands of two n-tiles, stored [n][k] (k contiguous, e.g. K in Q·Kᵀ): matrices (n 0-7, k 0-7),
// (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) → regs 0, 1 of n-tile 0 and regs 0, 1 of
// n-tile 1, without .trans.
HYMBA_HOST_DEVICE inline LaneOffset b_offset(int lane) {
  return {(lane & 7) + 8 * (lane >> 4), 8 * ((lane >> 3) & 1)};
}
// B operands of two n-tiles, stored [k][n] (n contiguous, e.g. V in P·V), loaded with .trans:
// matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15) → regs 0, 1 of
// n-tile 0 and regs 0, 1 of n-tile 1.
HYMBA_HOST_DEVICE inline LaneOffset bt_offset(int lane) {
  return {(lane & 7) + 8 * ((lane >> 3) & 1), 8 * (lane >> 4)};
}

// ---- PTX wrappers ---------------------------------------------------------------------------

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global → shared, asynchronous; valid == false writes 16 zero bytes and reads nothing.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(dst)),
               "l"(__cvta_generic_to_global(src)), "r"(valid ? 16 : 0)
               : "memory");
}
// 4 bytes global → shared, asynchronous; valid == false writes a zero.
__device__ __forceinline__ void cp_async4(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_address(dst)),
               "l"(__cvta_generic_to_global(src)), "r"(valid ? 4 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Four 8x8 bf16 matrices from shared memory; p is this lane's row address.
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p))
               : "memory");
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const bf16* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(p))
               : "memory");
}

// d += a · b for one 16x8x16 tile: bf16 operands, fp32 accumulators.
__device__ __forceinline__ void mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

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

// ---- fragment loads from a padded shared tile ----------------------------------------------

// A fragment of the 16x16 block at (row0, col0) of a row-major tile with row stride ld.
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16* tile, int ld, int row0, int col0) {
  const LaneOffset o = a_offset(threadIdx.x % 32);
  ldsm_x4(a, tile + (row0 + o.row) * ld + col0 + o.col);
}
// B fragments of n-tiles n0 and n0 + 8, k-step at k0, from a tile stored [n][k].
__device__ __forceinline__ void load_b(uint32_t (&b)[4], const bf16* tile, int ld, int n0, int k0) {
  const LaneOffset o = b_offset(threadIdx.x % 32);
  ldsm_x4(b, tile + (n0 + o.row) * ld + k0 + o.col);
}
// B fragments of n-tiles n0 and n0 + 8, k-step at k0, from a tile stored [k][n].
__device__ __forceinline__ void load_bt(uint32_t (&b)[4], const bf16* tile, int ld, int k0, int n0) {
  const LaneOffset o = bt_offset(threadIdx.x % 32);
  ldsm_x4_trans(b, tile + (k0 + o.row) * ld + n0 + o.col);
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

// acc[16 rows x 8·N] += A (16 x 16·K, fragments a) · Bᵀ where B is stored [n][k] at `tile`
// (rows n of the product, k contiguous): the Q·Kᵀ shape.
template <int N, int K>
__device__ __forceinline__ void mma_abt(float (&acc)[N][4], const uint32_t (&a)[K][4], const bf16* tile, int ld) {
#pragma unroll
  for (int kk = 0; kk < K; ++kk) {
#pragma unroll
    for (int np = 0; np < N / 2; ++np) {
      uint32_t b[4];
      load_b(b, tile, ld, np * 16, kk * 16);
      mma(acc[2 * np], a[kk], b[0], b[1]);
      mma(acc[2 * np + 1], a[kk], b[2], b[3]);
    }
  }
}

// acc[16 rows x 8·N] += A (16 x 16·K, fragments a) · B where B is stored [k][n] at `tile`: the
// P·V shape.
template <int N, int K>
__device__ __forceinline__ void mma_ab(float (&acc)[N][4], const uint32_t (&a)[K][4], const bf16* tile, int ld) {
#pragma unroll
  for (int kk = 0; kk < K; ++kk) {
#pragma unroll
    for (int np = 0; np < N / 2; ++np) {
      uint32_t b[4];
      load_bt(b, tile, ld, kk * 16, np * 16);
      mma(acc[2 * np], a[kk], b[0], b[1]);
      mma(acc[2 * np + 1], a[kk], b[2], b[3]);
    }
  }
}

// ---- global → shared tiles ------------------------------------------------------------------

// Rows [row0, row0 + kBlock) of a [rows, W] bf16 matrix at row stride ld (elements) into a shared
// tile at row stride lds, as 16-byte cp.async chunks; rows at or past `rows` become zeros (their
// source address is the matrix start, which is never read).
template <int W>
__device__ __forceinline__ void load_tile(bf16* dst, int lds, const bf16* src, int64_t ld, int row0, int rows) {
  constexpr int kChunks = W / 8;  // per row
  static_assert(kBlock * kChunks % kThreads == 0, "whole chunks per thread");
#pragma unroll
  for (int i = 0; i < kBlock * kChunks / kThreads; ++i) {
    const int x = int(threadIdx.x) + i * kThreads;
    const int r = x / kChunks, c = x % kChunks;
    const bool valid = row0 + r < rows;
    cp_async16(dst + r * lds + c * 8, valid ? src + int64_t(row0 + r) * ld + c * 8 : src, valid);
  }
}

// What the kernels take of the shape: sizes as int (the launchers check they fit), the mask, and
// the score scale 1/sqrt(hd).
struct Dims {
  int B, S, nh, nkv;
  Mask mask;
  float scale;
};

// ---- forward --------------------------------------------------------------------------------

// Block → (b, head, tile) for the row-tile kernels (forward, dq): the tile index runs slowest and
// from the last tile down, so the heaviest blocks (most key tiles) start first.
struct RowBlock {
  int b, h, qt;
};

__device__ __forceinline__ RowBlock row_block(const Dims& d) {
  const int tiles = ceil_div(d.S, kBlock), heads = d.B * d.nh;
  const int bh = int(blockIdx.x) % heads;
  return {bh / d.nh, bh % d.nh, tiles - 1 - int(blockIdx.x) / heads};
}

constexpr size_t kForwardSmem = sizeof(bf16) * size_t(3 * kTileK + 2 * kTileV);

__global__ void __launch_bounds__(kThreads, 2)
    forward_kernel(bf16* __restrict__ out, float* __restrict__ lse, const bf16* __restrict__ q,
                   const bf16* __restrict__ k, const bf16* __restrict__ v, int64_t ldv, Dims d) {
  const int S = d.S;
  const RowBlock rb = row_block(d);
  const int b = rb.b, h = rb.h, g = h / (d.nh / d.nkv), q0 = rb.qt * kBlock;
  const float scale_log2 = d.scale * kLog2e;

  extern __shared__ __align__(16) unsigned char smem[];
  bf16* qs = reinterpret_cast<bf16*>(smem);  // [kBlock, kLdK] the block's query rows
  bf16* ks = qs + kTileK;                    // [2][kBlock, kLdK] key tiles (double buffer)
  bf16* vs = ks + 2 * kTileK;                // [2][kBlock, kLdV] value tiles

  const int64_t ldq = int64_t(d.nh) * kHd, ldk = int64_t(d.nkv) * kHd;
  const bf16* qb = q + int64_t(b) * S * ldq + h * kHd;  // query row i at qb + i·ldq
  const bf16* kb = k + int64_t(b) * S * ldk + g * kHd;  // key row j at kb + j·ldk
  const bf16* vb = v + int64_t(b) * S * ldv + g * kVd;  // value row j at vb + j·ldv

  const KeyTiles tiles = key_tiles(rb.qt, d.mask);
  load_tile<kHd>(qs, kLdK, qb, ldq, q0, S);
  load_tile<kHd>(ks, kLdK, kb, ldk, tiles.tile(0) * kBlock, S);
  load_tile<kVd>(vs, kLdV, vb, ldv, tiles.tile(0) * kBlock, S);
  cp_async_commit();

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int gr = lane / 4, tc = lane % 4;  // fragment row group, column pair
  const int row0 = q0 + warp * 16 + gr;    // this thread's rows: row0 and row0 + 8

  cp_async_wait_all();
  __syncthreads();
  uint32_t qf[4][4];  // Q A fragments, k-steps over hd
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) load_a(qf[kk], qs, kLdK, warp * 16, kk * 16);

  // Online softmax per row r (rows row0 and row0 + 8): running max m of the raw scores, this
  // thread's part of Σ exp(score − m) (the 4 threads of a row are summed at the end), and
  // o = Σ exp(score − m)·v over the row's columns 8n + 2tc, + 1.
  float o[16][4];
#pragma unroll
  for (int n = 0; n < 16; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};

  for (int i = 0; i < tiles.n; ++i) {
    const int buf = i & 1;
    cp_async_wait_all();  // tile i is in
    __syncthreads();      // … for every thread, and tile i − 1 (the other buffer) is no longer read
    if (i + 1 < tiles.n) {
      const int next = tiles.tile(i + 1) * kBlock;
      load_tile<kHd>(ks + (buf ^ 1) * kTileK, kLdK, kb, ldk, next, S);
      load_tile<kVd>(vs + (buf ^ 1) * kTileV, kLdV, vb, ldv, next, S);
    }
    cp_async_commit();
    const int k0 = tiles.tile(i) * kBlock;

    float sc[8][4];  // S = Q Kᵀ: rows row0, row0 + 8; keys k0 + 8j + 2tc, + 1
#pragma unroll
    for (int j = 0; j < 8; ++j) sc[j][0] = sc[j][1] = sc[j][2] = sc[j][3] = 0.f;
    mma_abt<8, 4>(sc, qf, ks + buf * kTileK, kLdK);

    if (!tile_unmasked(q0, k0, d.mask)) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          if (!allows(row0 + 8 * (e >> 1), k0 + 8 * j + 2 * tc + (e & 1), d.mask)) sc[j][e] = -INFINITY;
        }
      }
    }

#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float mx = -INFINITY;
#pragma unroll
      for (int j = 0; j < 8; ++j) mx = fmaxf(mx, fmaxf(sc[j][2 * r], sc[j][2 * r + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));  // the 4 threads of the row
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[r], mx);
      // A row that has seen only masked keys keeps m = −inf: subtracting 0 then gives exp2(−inf)
      // = 0 rather than exp2(−inf + inf) = NaN.
      const float base = m_new == -INFINITY ? 0.f : m_new * scale_log2;
      const float alpha = exp2_approx(m[r] * scale_log2 - base);  // 0 while m was −inf
      m[r] = m_new;
      l[r] *= alpha;
#pragma unroll
      for (int n = 0; n < 16; ++n) o[n][2 * r] *= alpha, o[n][2 * r + 1] *= alpha;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
#pragma unroll
        for (int e = 2 * r; e < 2 * r + 2; ++e) {
          sc[j][e] = exp2_approx(fmaf(sc[j][e], scale_log2, -base));
          l[r] += sc[j][e];
        }
      }
    }

    uint32_t pf[4][4];  // P as A fragments, k-steps over the tile's keys
    scores_to_a(pf, sc);
    mma_ab<16, 4>(o, pf, vs + buf * kTileV, kLdV);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float lt = l[r];
    lt += __shfl_xor_sync(0xffffffffu, lt, 1);
    lt += __shfl_xor_sync(0xffffffffu, lt, 2);
    const int row = row0 + 8 * r;
    if (row >= S) continue;
    // The diagonal key is always visible, so lt >= 1.
    const float inv = 1.f / lt;
    bf16* orow = out + ((int64_t(b) * S + row) * d.nh + h) * kVd + 2 * tc;  // columns 8n + 2tc, + 1
#pragma unroll
    for (int n = 0; n < 16; ++n) {
      *reinterpret_cast<uint32_t*>(orow + 8 * n) = pack_bf16(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
    }
    if (tc == 0) lse[(int64_t(b) * d.nh + h) * S + row] = m[r] * d.scale + logf(lt);
  }
}

// ---- backward -------------------------------------------------------------------------------

// D[b, h, i] = dout_i · out_i and lse2[b, h, i] = lse[b, h, i]·log2(e), one warp per query row
// (b·S + i)·nh + h; dout and out [B·S·nh, vd], lane l reads columns 4l .. 4l + 3.
constexpr int kRowWarps = 8;

__global__ void __launch_bounds__(kRowWarps * 32)
    row_dot_kernel(float* __restrict__ D, float* __restrict__ lse2, const bf16* __restrict__ dout,
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

constexpr size_t kDqSmem = sizeof(bf16) * size_t(3 * kTileK + 3 * kTileV);

// dq_i = scale · Σ_j dS_ij k_j with P_ij = exp(scale·q_i·k_j − lse_i), dS_ij = P_ij (dout_i·v_j − D_i).
// The block layout of the forward; the block's Q and dO rows live in registers.
__global__ void __launch_bounds__(kThreads, 2)
    dq_kernel(bf16* __restrict__ dq, const bf16* __restrict__ dout, const bf16* __restrict__ q,
              const bf16* __restrict__ k, const bf16* __restrict__ v, int64_t ldv,
              const float* __restrict__ lse2, const float* __restrict__ D, Dims d) {
  const int S = d.S;
  const RowBlock rb = row_block(d);
  const int b = rb.b, h = rb.h, g = h / (d.nh / d.nkv), q0 = rb.qt * kBlock;
  const float scale_log2 = d.scale * kLog2e;

  extern __shared__ __align__(16) unsigned char smem[];
  bf16* qs = reinterpret_cast<bf16*>(smem);  // [kBlock, kLdK] the block's query rows
  bf16* dos = qs + kTileK;                   // [kBlock, kLdV] their output gradients
  bf16* ks = dos + kTileV;                   // [2][kBlock, kLdK] key tiles
  bf16* vs = ks + 2 * kTileK;                // [2][kBlock, kLdV] value tiles

  const int64_t ldq = int64_t(d.nh) * kHd, ldo = int64_t(d.nh) * kVd, ldk = int64_t(d.nkv) * kHd;
  const bf16* kb = k + int64_t(b) * S * ldk + g * kHd;  // key row j at kb + j·ldk
  const bf16* vb = v + int64_t(b) * S * ldv + g * kVd;  // value row j at vb + j·ldv

  const KeyTiles tiles = key_tiles(rb.qt, d.mask);
  load_tile<kHd>(qs, kLdK, q + int64_t(b) * S * ldq + h * kHd, ldq, q0, S);
  load_tile<kVd>(dos, kLdV, dout + int64_t(b) * S * ldo + h * kVd, ldo, q0, S);
  load_tile<kHd>(ks, kLdK, kb, ldk, tiles.tile(0) * kBlock, S);
  load_tile<kVd>(vs, kLdV, vb, ldv, tiles.tile(0) * kBlock, S);
  cp_async_commit();

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

  cp_async_wait_all();
  __syncthreads();
  uint32_t qf[4][4], dof[8][4];  // Q and dO A fragments (k-steps over hd, vd)
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) load_a(qf[kk], qs, kLdK, warp * 16, kk * 16);
#pragma unroll
  for (int kk = 0; kk < 8; ++kk) load_a(dof[kk], dos, kLdV, warp * 16, kk * 16);

  float acc[8][4];  // dq / scale: rows row0, row0 + 8; columns 8n + 2tc, + 1
#pragma unroll
  for (int n = 0; n < 8; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  for (int i = 0; i < tiles.n; ++i) {
    const int buf = i & 1;
    cp_async_wait_all();
    __syncthreads();
    if (i + 1 < tiles.n) {
      const int next = tiles.tile(i + 1) * kBlock;
      load_tile<kHd>(ks + (buf ^ 1) * kTileK, kLdK, kb, ldk, next, S);
      load_tile<kVd>(vs + (buf ^ 1) * kTileV, kLdV, vb, ldv, next, S);
    }
    cp_async_commit();
    const int k0 = tiles.tile(i) * kBlock;
    const bf16* kt = ks + buf * kTileK;
    const bf16* vt = vs + buf * kTileV;

    float p[8][4];  // S, then P: rows row0, row0 + 8; keys k0 + 8j + 2tc, + 1
#pragma unroll
    for (int j = 0; j < 8; ++j) p[j][0] = p[j][1] = p[j][2] = p[j][3] = 0.f;
    mma_abt<8, 4>(p, qf, kt, kLdK);
    const bool unmasked = tile_unmasked(q0, k0, d.mask);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float x = exp2_approx(fmaf(p[j][e], scale_log2, -lse_r[e >> 1]));
        p[j][e] = unmasked || allows(row0 + 8 * (e >> 1), k0 + 8 * j + 2 * tc + (e & 1), d.mask) ? x : 0.f;
      }
    }

    float dp[8][4];  // dP = dO Vᵀ, then dS
#pragma unroll
    for (int j = 0; j < 8; ++j) dp[j][0] = dp[j][1] = dp[j][2] = dp[j][3] = 0.f;
    mma_abt<8, 8>(dp, dof, vt, kLdV);
#pragma unroll
    for (int j = 0; j < 8; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) dp[j][e] = p[j][e] * (dp[j][e] - D_r[e >> 1]);
    }

    uint32_t dsf[4][4];  // dS as A fragments, k-steps over the tile's keys
    scores_to_a(dsf, dp);
    mma_ab<8, 4>(acc, dsf, kt, kLdK);
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row = row0 + 8 * r;
    if (row >= S) continue;
    bf16* drow = dq + (int64_t(b) * S + row) * ldq + h * kHd + 2 * tc;  // columns 8n + 2tc, + 1
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      *reinterpret_cast<uint32_t*>(drow + 8 * n) = pack_bf16(d.scale * acc[n][2 * r], d.scale * acc[n][2 * r + 1]);
    }
  }
}

constexpr size_t kDkDvSmem = sizeof(bf16) * size_t(3 * kTileK + 3 * kTileV) + sizeof(float) * 4 * kBlock;

// dv_j += Σ_h Σ_i P_ij dout_i and dk_j += scale · Σ_h Σ_i dS_ij q_i over the query heads h of the
// group and the queries i that see key j. A block owns 64 keys of one (b, KV head) and walks
// (head, query tile) pairs, head outermost; warp w owns keys k0 + 16w .. + 15. Products are
// transposed (keys are the rows): Sᵀ = K Qᵀ and dPᵀ = V dOᵀ.
__global__ void __launch_bounds__(kThreads, 2)
    dkdv_kernel(bf16* __restrict__ dk, bf16* __restrict__ dv, const bf16* __restrict__ dout,
                const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                int64_t ldv, const float* __restrict__ lse2, const float* __restrict__ D, Dims d) {
  const int S = d.S, rep = d.nh / d.nkv;
  const int tiles = ceil_div(S, kBlock), groups = d.B * d.nkv;
  // The first key tiles are seen by the most queries: they start first.
  const int kt = int(blockIdx.x) / groups, bg = int(blockIdx.x) % groups;
  const int b = bg / d.nkv, g = bg % d.nkv, k0 = kt * kBlock;
  const float scale_log2 = d.scale * kLog2e;

  extern __shared__ __align__(16) unsigned char smem[];
  bf16* ks = reinterpret_cast<bf16*>(smem);  // [kBlock, kLdK] the block's keys
  bf16* vs = ks + kTileK;                    // [kBlock, kLdV] and values
  bf16* qs = vs + kTileV;                    // [2][kBlock, kLdK] query tiles
  bf16* dos = qs + 2 * kTileK;               // [2][kBlock, kLdV] their output gradients
  float* ls = reinterpret_cast<float*>(dos + 2 * kTileV);  // [2][kBlock] lse·log2(e) of the queries
  float* Ds = ls + 2 * kBlock;                              // [2][kBlock] D of the queries

  const int64_t ldq = int64_t(d.nh) * kHd, ldo = int64_t(d.nh) * kVd, ldk = int64_t(d.nkv) * kHd;
  const bf16* qb = q + int64_t(b) * S * ldq;     // query row i of head h at qb + i·ldq + h·hd
  const bf16* ob = dout + int64_t(b) * S * ldo;  // dout row i of head h at ob + i·ldo + h·vd
  const QueryTiles qtiles = query_tiles(kt, tiles, d.mask);
  const int n = rep * qtiles.count;  // iterations: (head, query tile), head outermost
  // Iteration it's query head and first query.
  auto head_of = [&](int it) { return g * rep + it / qtiles.count; };
  auto q0_of = [&](int it) { return (qtiles.first + it % qtiles.count) * kBlock; };
  auto load_queries = [&](int it, int buf) {
    const int h = head_of(it), q0 = q0_of(it);
    load_tile<kHd>(qs + buf * kTileK, kLdK, qb + h * kHd, ldq, q0, S);
    load_tile<kVd>(dos + buf * kTileV, kLdV, ob + h * kVd, ldo, q0, S);
    // Threads 0-63 load lse·log2(e) of the 64 queries, threads 64-127 their D (0 past the end).
    const int t = int(threadIdx.x), r = t % kBlock;
    const float* src = (t < kBlock ? lse2 : D) + (int64_t(b) * d.nh + h) * S;
    float* dst = (t < kBlock ? ls : Ds) + buf * kBlock;
    const bool valid = q0 + r < S;
    cp_async4(dst + r, valid ? src + q0 + r : src, valid);
  };

  load_tile<kHd>(ks, kLdK, k + int64_t(b) * S * ldk + g * kHd, ldk, k0, S);
  load_tile<kVd>(vs, kLdV, v + int64_t(b) * S * ldv + g * kVd, ldv, k0, S);
  load_queries(0, 0);
  cp_async_commit();

  const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
  const int gr = lane / 4, tc = lane % 4;
  const int key0 = k0 + warp * 16 + gr;  // this thread's keys: key0, key0 + 8

  float dka[8][4], dva[16][4];  // dk / scale and dv of the warp's 16 keys; columns 8c + 2tc, + 1
#pragma unroll
  for (int c = 0; c < 8; ++c) dka[c][0] = dka[c][1] = dka[c][2] = dka[c][3] = 0.f;
#pragma unroll
  for (int c = 0; c < 16; ++c) dva[c][0] = dva[c][1] = dva[c][2] = dva[c][3] = 0.f;

  for (int it = 0; it < n; ++it) {
    const int buf = it & 1;
    cp_async_wait_all();
    __syncthreads();
    if (it + 1 < n) load_queries(it + 1, buf ^ 1);
    cp_async_commit();
    const int q0 = q0_of(it);
    const bool unmasked = tile_unmasked(q0, k0, d.mask);

    // The 64 queries in two halves of 32 (columns c0 .. c0 + 31 of the tile): the score-shaped
    // tiles of a half take half the registers, and a rolled loop keeps ptxas from interleaving the
    // halves (255 registers without spills, as two blocks per SM allow).
#pragma unroll 1
    for (int c0 = 0; c0 < kBlock; c0 += 32) {
      const bf16* qt = qs + buf * kTileK + c0 * kLdK;  // [32, kLdK] the half's query rows
      const bf16* ot = dos + buf * kTileV + c0 * kLdV;  // [32, kLdV] their output gradients
      const float* lt = ls + buf * kBlock + c0;         // [32]
      const float* Dt = Ds + buf * kBlock + c0;         // [32]

      // Sᵀ = K Qᵀ (16 keys x 32 queries), then Pᵀ = exp(Sᵀ − lse_query).
      float p[4][4];  // keys key0, key0 + 8; queries q0 + c0 + 8j + 2tc, + 1
#pragma unroll
      for (int j = 0; j < 4; ++j) p[j][0] = p[j][1] = p[j][2] = p[j][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        uint32_t a[1][4];  // the warp's keys as an A fragment, k-step kk over hd
        load_a(a[0], ks, kLdK, warp * 16, kk * 16);
        mma_abt<4, 1>(p, a, qt + kk * 16, kLdK);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = 8 * j + 2 * tc + (e & 1);  // query q0 + c0 + c
          const float x = exp2_approx(fmaf(p[j][e], scale_log2, -lt[c]));
          p[j][e] = unmasked || allows(q0 + c0 + c, key0 + 8 * (e >> 1), d.mask) ? x : 0.f;
        }
      }

      // dPᵀ = V dOᵀ (16 keys x 32 queries), then dSᵀ = Pᵀ (dPᵀ − D_query).
      float ds[4][4];
#pragma unroll
      for (int j = 0; j < 4; ++j) ds[j][0] = ds[j][1] = ds[j][2] = ds[j][3] = 0.f;
#pragma unroll
      for (int kk = 0; kk < 8; ++kk) {
        uint32_t a[1][4];  // the warp's values as an A fragment, k-step kk over vd
        load_a(a[0], vs, kLdV, warp * 16, kk * 16);
        mma_abt<4, 1>(ds, a, ot + kk * 16, kLdV);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) ds[j][e] = p[j][e] * (ds[j][e] - Dt[8 * j + 2 * tc + (e & 1)]);
      }

      // dV += Pᵀ dO and dK += dSᵀ Q over the half's 32 queries (2 k-steps).
      uint32_t pf[2][4], dsf[2][4];
      scores_to_a(pf, p);
      scores_to_a(dsf, ds);
      mma_ab<16, 2>(dva, pf, ot, kLdV);
      mma_ab<8, 2>(dka, dsf, qt, kLdK);
    }
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
  // Blocks of the largest grid (the D kernel: 8 rows each, so at most 8 per (b, head, query
  // tile) of the forward and dq grids); B, nh, S fit in int below it.
  if (s.B * s.nh * ((s.S + kBlock - 1) / kBlock) * 8 > int64_t(0x7fffffff)) return "too many blocks for the grid";
  return nullptr;
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

// bf16 tensors move in 16-byte pieces (q, k, v by cp.async) or 4- and 8-byte pieces; lse and the
// workspace in floats.
void check_aligned(const void* p, int bytes, const char* name, const char* op) {
  if (reinterpret_cast<uintptr_t>(p) % bytes != 0) fail(op, ": ", name, " (", p, ") is not ", bytes, "-byte aligned");
}

template <class Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  HYMBA_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
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
  allow_smem(forward_kernel, kForwardSmem);
  forward_kernel<<<blocks(s.B * s.nh * tiles), kThreads, kForwardSmem, stream>>>(out, lse, q, k, v, ldv, dims(s));
  HYMBA_CUDA_CHECK_LAUNCH();
}

int64_t flash_attention_backward_workspace(const AttentionShape& s) { return 2 * s.B * s.nh * s.S; }

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
  check_aligned(workspace, 4, "workspace", op);
  const Dims d = dims(s);
  float* D = workspace;                        // [B, nh, S]
  float* lse2 = workspace + s.B * s.nh * s.S;  // [B, nh, S]
  const int64_t tiles = (s.S + kBlock - 1) / kBlock;

  const int64_t rows = s.B * s.S * s.nh;
  row_dot_kernel<<<blocks((rows + kRowWarps - 1) / kRowWarps), kRowWarps * 32, 0, stream>>>(D, lse2, dout, out,
                                                                                           lse, d);
  HYMBA_CUDA_CHECK_LAUNCH();

  allow_smem(dq_kernel, kDqSmem);
  dq_kernel<<<blocks(s.B * s.nh * tiles), kThreads, kDqSmem, stream>>>(dq, dout, q, k, v, ldv, lse2, D, d);
  HYMBA_CUDA_CHECK_LAUNCH();

  allow_smem(dkdv_kernel, kDkDvSmem);
  dkdv_kernel<<<blocks(s.B * s.nkv * tiles), kThreads, kDkDvSmem, stream>>>(dk, dv, dout, q, k, v, ldv, lse2, D, d);
  HYMBA_CUDA_CHECK_LAUNCH();
}

template void flash_attention_forward<bf16>(bf16*, float*, const bf16*, const bf16*, const bf16*, int64_t,
                                            const AttentionShape&, cudaStream_t);
template void flash_attention_backward<bf16>(bf16*, bf16*, bf16*, const bf16*, const bf16*, const bf16*,
                                             const bf16*, int64_t, const bf16*, const float*,
                                             const AttentionShape&, float*, cudaStream_t);

}  // namespace hymba::cuda
