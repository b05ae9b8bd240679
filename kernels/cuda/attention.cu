// Softmax attention kernels, the simple correct versions (fp32 arithmetic on CUDA cores; the
// tensor-core flash kernels come later). Shared layout of the forward and the dq kernel: a block
// owns kTileRows consecutive query rows of one (batch, head), each warp kRowsPerWarp of them. The
// block walks the keys its rows may see in tiles of kTile keys staged in shared memory; in a tile,
// lane l scores key l against the warp's current row, and the warp then folds the tile into the
// row's accumulators (lane l owns output columns l, l + 32, ...). The dk/dv kernel is the mirror
// image: a block owns kTileRows keys of one (batch, KV head) and walks tiles of the queries (of
// every query head of the group) that see them, so each dk/dv row has exactly one writer and the
// backward needs no atomics.
#include "cuda/attention.h"

#include <cmath>

#include "attention_mask.h"
#include "core/cuda_check.h"
#include "cuda/dtype.cuh"
#include "cuda/shared_memory.h"

namespace hymba::cuda {

namespace {

constexpr int kWarp = 32;
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * kWarp;
constexpr int kRowsPerWarp = 4;
constexpr int kTileRows = kWarps * kRowsPerWarp;  // rows a block owns (queries, or keys for dk/dv)
constexpr int kTile = kWarp;                      // rows per shared tile: one per lane
constexpr int kMaxCols = int(kAttentionMaxHeadDim) / kWarp;  // accumulators per lane per row
constexpr unsigned kFull = 0xffffffffu;

static_assert(kAttentionMaxHeadDim % kWarp == 0, "head dims are split over the lanes of a warp");

__device__ __forceinline__ bool allows(int64_t q, int64_t k, const AttentionShape& s) {
  return attention_allows(q, k, s.global, s.window, s.meta);
}

// Butterfly reductions: every lane ends with the same bits (each step adds a commutative pair).
__device__ __forceinline__ float warp_max(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFull, v, o));
  return v;
}
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = kWarp / 2; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}

__device__ __forceinline__ float dot(const float* a, const float* b, int n) {
  float d = 0;
  for (int c = 0; c < n; ++c) d += a[c] * b[c];
  return d;
}

// The keys the queries [i0, i1] may see, as two ranges visited in order: [0, end1) and
// [begin2, end2) with begin2 >= end1, so no key is visited twice. Under the sliding-window mask
// the first range holds the meta tokens and the second the union of the rows' windows; any key
// in neither is masked for every row. Each row still applies its own mask within the ranges.
struct KeyRanges {
  int64_t end1, begin2, end2;
};

__device__ KeyRanges key_ranges(int64_t i0, int64_t i1, const AttentionShape& s) {
  if (s.global) return {i1 + 1, i1 + 1, i1 + 1};
  const int64_t a = min(s.meta, i1 + 1);
  return {a, max(a, i0 - s.window), i1 + 1};
}

// Block → (batch, head, row tile): the tile index runs fastest so that blocks sharing K/V are
// launched together. `reverse` starts from the last tile (the heaviest under a causal mask).
struct BlockRows {
  int64_t b, h, r0, r1;  // rows [r0, r1] of head h in batch b
};

__device__ BlockRows block_rows(int64_t S, int64_t heads, bool reverse) {
  const int64_t tiles = (S + kTileRows - 1) / kTileRows;
  int64_t tile = int64_t(blockIdx.x) % tiles;
  if (reverse) tile = tiles - 1 - tile;
  const int64_t bh = int64_t(blockIdx.x) / tiles;
  const int64_t r0 = tile * kTileRows;
  return {bh / heads, bh % heads, r0, min(S, r0 + kTileRows) - 1};
}

// n rows of `width` T values (row r at src + r·ld; rows r >= valid are not read and stored as 0)
// into shared memory as floats at row stride lds (width, or width + 1 where lanes read whole rows).
template <class T>
__device__ void load_tile(float* dst, int lds, const T* src, int64_t ld, int n, int64_t valid,
                          int width) {
  for (int x = threadIdx.x; x < n * width; x += kThreads) {
    const int r = x / width, c = x % width;
    dst[r * lds + c] = r < valid ? to_float(src[r * ld + c]) : 0.f;
  }
}

// Calls f(t0, valid) for each tile of keys [t0, t0 + valid) that queries [i0, i1] may see (the
// meta-token range, then the window; see key_ranges), with the keys' rows of K and V loaded into
// ks [kTile, hd + 1] and vs [kTile, ldvs] (the forward and dq kernels' iteration).
template <class T, class F>
__device__ void for_each_key_tile(float* ks, float* vs, int ldvs, const T* k, const T* v,
                                  int64_t ldv, int64_t b, int64_t g, int64_t i0, int64_t i1,
                                  const AttentionShape& s, F f) {
  const int64_t S = s.S, nkv = s.nkv;
  const int hd = int(s.hd), vd = int(s.vd);
  const KeyRanges kr = key_ranges(i0, i1, s);
  for (int pass = 0; pass < 2; ++pass) {
    const int64_t begin = pass == 0 ? 0 : kr.begin2, end = pass == 0 ? kr.end1 : kr.end2;
    for (int64_t t0 = begin; t0 < end; t0 += kTile) {
      const int64_t valid = min(int64_t(kTile), end - t0);  // keys t0 .. t0 + valid − 1
      __syncthreads();  // the previous tile is no longer read
      load_tile(ks, hd + 1, k + ((b * S + t0) * nkv + g) * hd, nkv * hd, kTile, valid, hd);
      load_tile(vs, ldvs, v + (b * S + t0) * ldv + g * vd, ldv, kTile, valid, vd);
      __syncthreads();
      f(t0, valid);
    }
  }
}

// acc[t] += Σ_{jj < valid} w_jj · tile[jj·ld + c] for this lane's columns c = t·32 + lane < cols,
// where lane jj holds w_jj: a row of P (or dS) times a tile of V (or K, Q, dO) rows.
__device__ __forceinline__ void add_weighted_rows(float* acc, float w, const float* tile, int ld,
                                                  int64_t valid, int cols, int lane) {
  for (int jj = 0; jj < valid; ++jj) {
    const float wj = __shfl_sync(kFull, w, jj);
    const float* row = tile + jj * ld;  // [cols]
#pragma unroll
    for (int t = 0; t < kMaxCols; ++t) {
      const int c = t * kWarp + lane;
      if (c < cols) acc[t] += wj * row[c];
    }
  }
}

// dst[c] = f(dst[c], acc[t]) rounded to T for this lane's columns c = t·32 + lane < cols.
template <class T, class F>
__device__ __forceinline__ void update_row(T* dst, const float* acc, int cols, int lane, F f) {
#pragma unroll
  for (int t = 0; t < kMaxCols; ++t) {
    const int c = t * kWarp + lane;
    if (c < cols) dst[c] = from_float<T>(f(to_float(dst[c]), acc[t]));
  }
}

// ---- forward -------------------------------------------------------------------------------

template <class T>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v, int64_t ldv,
                   AttentionShape s, float scale) {
  const int64_t S = s.S, nh = s.nh, nkv = s.nkv;
  const int hd = int(s.hd), vd = int(s.vd);
  const BlockRows br = block_rows(S, nh, /*reverse=*/true);
  const int64_t b = br.b, h = br.h, i0 = br.r0, i1 = br.r1, g = h / (nh / nkv);

  extern __shared__ float smem[];
  float* qs = smem;                   // [kTileRows, hd] the block's query rows
  float* ks = qs + kTileRows * hd;    // [kTile, hd + 1] lane l reads row l: the pad spreads banks
  float* vs = ks + kTile * (hd + 1);  // [kTile, vd]

  load_tile(qs, hd, q + ((b * S + i0) * nh + h) * hd, nh * hd, kTileRows, i1 + 1 - i0, hd);

  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  // Online softmax per row: running max m, running Σ exp(score − m) l, and Σ exp(score − m)·v.
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kMaxCols];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -INFINITY;
    l[r] = 0;
#pragma unroll
    for (int t = 0; t < kMaxCols; ++t) acc[r][t] = 0;
  }

  for_each_key_tile(ks, vs, vd, k, v, ldv, b, g, i0, i1, s, [&](int64_t t0, int64_t valid) {
    const int64_t j = t0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = warp * kRowsPerWarp + r;
      const int64_t i = i0 + row;
      if (i > i1) continue;  // past the end of the sequence (warp-uniform)
      float sc = -INFINITY;
      if (lane < valid && allows(i, j, s)) sc = scale * dot(qs + row * hd, ks + lane * (hd + 1), hd);
      const float tile_max = warp_max(sc);
      if (tile_max == -INFINITY) continue;  // row i sees no key of this tile
      const float m_new = fmaxf(m[r], tile_max);
      const float alpha = expf(m[r] - m_new);  // rescales the old sums; 0 while m was −inf
      const float p = expf(sc - m_new);        // 0 for masked keys
      l[r] = l[r] * alpha + warp_sum(p);
      m[r] = m_new;
#pragma unroll
      for (int t = 0; t < kMaxCols; ++t) acc[r][t] *= alpha;
      add_weighted_rows(acc[r], p, vs, vd, valid, vd, lane);
    }
  });

  // The diagonal key is always visited, so l >= 1.
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = i0 + warp * kRowsPerWarp + r;
    if (i > i1) continue;
    update_row(out + ((b * S + i) * nh + h) * vd, acc[r], vd, lane,
               [&](float, float a) { return a / l[r]; });
    if (lane == 0) lse[(b * nh + h) * S + i] = m[r] + logf(l[r]);
  }
}

// ---- backward ------------------------------------------------------------------------------

// D[b, h, i] = dout_i · out_i, one warp per query row; D [B, nh, S], dout and out [B·S·nh, vd].
template <class T>
__global__ void __launch_bounds__(kThreads)
    attention_row_dot_kernel(float* D, const T* dout, const T* out, AttentionShape s) {
  const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / kWarp;  // (b·S + i)·nh + h
  if (row >= s.B * s.S * s.nh) return;  // whole warps leave together
  const int lane = threadIdx.x % kWarp;
  float d = 0;
  for (int64_t c = lane; c < s.vd; c += kWarp) {
    d += to_float(dout[row * s.vd + c]) * to_float(out[row * s.vd + c]);
  }
  d = warp_sum(d);
  const int64_t h = row % s.nh, bi = row / s.nh, i = bi % s.S, b = bi / s.S;
  if (lane == 0) D[(b * s.nh + h) * s.S + i] = d;
}

// dq_i = scale · Σ_j dS_ij k_j with P_ij = exp(scale·q_i·k_j − lse_i), dS_ij = P_ij (dout_i·v_j − D_i).
// The block layout of the forward; lane l owns dq columns l, l + 32, ...
template <class T>
__global__ void __launch_bounds__(kThreads)
    attention_dq_kernel(T* dq, const T* dout, const T* q, const T* k, const T* v, int64_t ldv,
              const float* lse, const float* D, AttentionShape s, float scale) {
  const int64_t S = s.S, nh = s.nh, nkv = s.nkv;
  const int hd = int(s.hd), vd = int(s.vd);
  const BlockRows br = block_rows(S, nh, /*reverse=*/true);
  const int64_t b = br.b, h = br.h, i0 = br.r0, i1 = br.r1, g = h / (nh / nkv);

  extern __shared__ float smem[];
  float* qs = smem;                    // [kTileRows, hd] the block's query rows
  float* dos = qs + kTileRows * hd;    // [kTileRows, vd] their output gradients
  float* ks = dos + kTileRows * vd;    // [kTile, hd + 1] (padded: lane l reads row l)
  float* vs = ks + kTile * (hd + 1);   // [kTile, vd + 1] (padded: lane l reads row l)

  const int64_t rows = i1 + 1 - i0;
  load_tile(qs, hd, q + ((b * S + i0) * nh + h) * hd, nh * hd, kTileRows, rows, hd);
  load_tile(dos, vd, dout + ((b * S + i0) * nh + h) * vd, nh * vd, kTileRows, rows, vd);

  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  float lse_r[kRowsPerWarp], D_r[kRowsPerWarp], acc[kRowsPerWarp][kMaxCols];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = i0 + warp * kRowsPerWarp + r;
    lse_r[r] = i <= i1 ? lse[(b * nh + h) * S + i] : 0.f;
    D_r[r] = i <= i1 ? D[(b * nh + h) * S + i] : 0.f;
#pragma unroll
    for (int t = 0; t < kMaxCols; ++t) acc[r][t] = 0;
  }

  for_each_key_tile(ks, vs, vd + 1, k, v, ldv, b, g, i0, i1, s, [&](int64_t t0, int64_t valid) {
    const int64_t j = t0 + lane;
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = warp * kRowsPerWarp + r;
      const int64_t i = i0 + row;
      if (i > i1) continue;  // warp-uniform
      const bool visible = lane < valid && allows(i, j, s);
      if (!__any_sync(kFull, visible)) continue;
      float ds = 0;
      if (visible) {
        const float p = expf(scale * dot(qs + row * hd, ks + lane * (hd + 1), hd) - lse_r[r]);
        ds = p * (dot(dos + row * vd, vs + lane * (vd + 1), vd) - D_r[r]);
      }
      add_weighted_rows(acc[r], ds, ks, hd + 1, valid, hd, lane);
    }
  });

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t i = i0 + warp * kRowsPerWarp + r;
    if (i > i1) continue;
    update_row(dq + ((b * S + i) * nh + h) * hd, acc[r], hd, lane,
               [&](float, float a) { return scale * a; });
  }
}

// dv_j += Σ_h Σ_i P_ij dout_i and dk_j += scale · Σ_h Σ_i dS_ij q_i over the query heads h of the
// group and the queries i that see key j. A block owns kTileRows keys of one (batch, KV head);
// in a tile of queries lane l handles query l, and lane l owns columns l, l + 32, ... of dk, dv.
template <class T>
__global__ void __launch_bounds__(kThreads)
    attention_dkdv_kernel(T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v, int64_t ldv,
                const float* lse, const float* D, AttentionShape s, float scale) {
  const int64_t S = s.S, nh = s.nh, nkv = s.nkv, rep = nh / nkv;
  const int hd = int(s.hd), vd = int(s.vd);
  // Natural order: the first key tiles are seen by the most queries.
  const BlockRows br = block_rows(S, nkv, /*reverse=*/false);
  const int64_t b = br.b, g = br.h, j0 = br.r0, j1 = br.r1;
  // Queries that see a key of the block: all later ones for a meta key or a global layer, else
  // those within the window of the last key.
  const int64_t q_end = (s.global || j0 < s.meta || s.window >= S) ? S : min(S, j1 + s.window + 1);

  extern __shared__ float smem[];
  float* ks = smem;                       // [kTileRows, hd] the block's keys
  float* vs = ks + kTileRows * hd;        // [kTileRows, vd] and values
  float* qs = vs + kTileRows * vd;        // [kTile, hd + 1] (padded: lane l reads row l)
  float* dos = qs + kTile * (hd + 1);     // [kTile, vd + 1] (padded: lane l reads row l)
  float* lses = dos + kTile * (vd + 1);   // [kTile]
  float* Ds = lses + kTile;               // [kTile]

  const int64_t keys = j1 + 1 - j0;
  load_tile(ks, hd, k + ((b * S + j0) * nkv + g) * hd, nkv * hd, kTileRows, keys, hd);
  load_tile(vs, vd, v + (b * S + j0) * ldv + g * vd, ldv, kTileRows, keys, vd);

  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  float dk_acc[kRowsPerWarp][kMaxCols], dv_acc[kRowsPerWarp][kMaxCols];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
    for (int t = 0; t < kMaxCols; ++t) dk_acc[r][t] = dv_acc[r][t] = 0;
  }

  for (int64_t h = g * rep; h < (g + 1) * rep; ++h) {
    for (int64_t t0 = j0; t0 < q_end; t0 += kTile) {
      const int64_t valid = min(int64_t(kTile), q_end - t0);  // queries t0 .. t0 + valid − 1
      __syncthreads();  // the previous tile is no longer read
      load_tile(qs, hd + 1, q + ((b * S + t0) * nh + h) * hd, nh * hd, kTile, valid, hd);
      load_tile(dos, vd + 1, dout + ((b * S + t0) * nh + h) * vd, nh * vd, kTile, valid, vd);
      if (threadIdx.x < kTile) {
        const bool in = threadIdx.x < valid;
        lses[threadIdx.x] = in ? lse[(b * nh + h) * S + t0 + threadIdx.x] : 0.f;
        Ds[threadIdx.x] = in ? D[(b * nh + h) * S + t0 + threadIdx.x] : 0.f;
      }
      __syncthreads();
      const int64_t i = t0 + lane;
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const int row = warp * kRowsPerWarp + r;
        const int64_t j = j0 + row;
        if (j > j1) continue;  // warp-uniform
        const bool visible = lane < valid && allows(i, j, s);
        if (!__any_sync(kFull, visible)) continue;
        float p = 0, ds = 0;
        if (visible) {
          p = expf(scale * dot(qs + lane * (hd + 1), ks + row * hd, hd) - lses[lane]);
          ds = p * (dot(dos + lane * (vd + 1), vs + row * vd, vd) - Ds[lane]);
        }
        // One pass over the queries for both sums (two add_weighted_rows passes measured 12%
        // slower: twice the shuffles).
        for (int ii = 0; ii < valid; ++ii) {
          const float pi = __shfl_sync(kFull, p, ii), dsi = __shfl_sync(kFull, ds, ii);
          const float* qi = qs + ii * (hd + 1);    // [hd]
          const float* doi = dos + ii * (vd + 1);  // [vd]
#pragma unroll
          for (int t = 0; t < kMaxCols; ++t) {
            const int c = t * kWarp + lane;
            if (c < hd) dk_acc[r][t] += dsi * qi[c];
            if (c < vd) dv_acc[r][t] += pi * doi[c];
          }
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int64_t j = j0 + warp * kRowsPerWarp + r;
    if (j > j1) continue;
    update_row(dk + ((b * S + j) * nkv + g) * hd, dk_acc[r], hd, lane,
               [&](float old, float a) { return old + scale * a; });
    update_row(dv + ((b * S + j) * nkv + g) * vd, dv_acc[r], vd, lane,
               [&](float old, float a) { return old + a; });
  }
}

// ---- host ----------------------------------------------------------------------------------

// Validates the shape; false when there is nothing to compute.
bool check_shape(const AttentionShape& s, int64_t ldv, const char* op) {
  if (s.B < 0 || s.S < 0 || s.nh < 0) fail(op, ": negative size (B ", s.B, ", S ", s.S, ", nh ", s.nh, ")");
  if (s.nkv <= 0 || s.nh % s.nkv != 0) {
    fail(op, ": nh ", s.nh, " is not a multiple of a positive nkv ", s.nkv);
  }
  if (s.hd < 1 || s.hd > kAttentionMaxHeadDim) {
    fail(op, ": hd ", s.hd, " is outside the supported 1..", kAttentionMaxHeadDim);
  }
  if (s.vd < 1 || s.vd > kAttentionMaxHeadDim) {
    fail(op, ": vd ", s.vd, " is outside the supported 1..", kAttentionMaxHeadDim);
  }
  if (ldv < s.nkv * s.vd) fail(op, ": ldv ", ldv, " is below nkv·vd = ", s.nkv * s.vd);
  if (!s.global && (s.window < 0 || s.meta < 0)) {
    fail(op, ": window ", s.window, " and meta ", s.meta, " must not be negative");
  }
  return s.B > 0 && s.S > 0 && s.nh > 0;
}

// Blocks of kTileRows rows for every (batch, head).
unsigned row_blocks(const AttentionShape& s, int64_t heads, const char* op) {
  const int64_t n = s.B * heads * ((s.S + kTileRows - 1) / kTileRows);
  if (n > int64_t(0x7fffffff)) fail(op, ": ", n, " blocks exceed the grid limit");
  return unsigned(n);
}

float score_scale(const AttentionShape& s) { return float(1.0 / std::sqrt(double(s.hd))); }

}  // namespace

template <class T>
void attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, int64_t ldv,
                       const AttentionShape& s, cudaStream_t stream) {
  if (!check_shape(s, ldv, "attention_forward")) return;
  const unsigned blocks = row_blocks(s, s.nh, "attention_forward");
  const size_t smem = sizeof(float) * size_t(kTileRows * s.hd + kTile * (s.hd + 1) + kTile * s.vd);
  allow_smem(attention_forward_kernel<T>, smem);
  attention_forward_kernel<T><<<blocks, kThreads, smem, stream>>>(out, lse, q, k, v, ldv, s, score_scale(s));
  HYMBA_CUDA_CHECK_LAUNCH();
}

int64_t attention_backward_workspace(const AttentionShape& s) { return s.B * s.nh * s.S; }

template <class T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        int64_t ldv, const T* out, const float* lse, const AttentionShape& s,
                        float* workspace, cudaStream_t stream) {
  if (!check_shape(s, ldv, "attention_backward")) return;
  float* D = workspace;  // [B, nh, S]
  const float scale = score_scale(s);

  const int64_t rows = s.B * s.S * s.nh;
  attention_row_dot_kernel<T><<<unsigned((rows + kWarps - 1) / kWarps), kThreads, 0, stream>>>(D, dout, out, s);
  HYMBA_CUDA_CHECK_LAUNCH();

  const unsigned q_blocks = row_blocks(s, s.nh, "attention_backward");
  const size_t dq_smem =
      sizeof(float) * size_t(kTileRows * (s.hd + s.vd) + kTile * (s.hd + 1) + kTile * (s.vd + 1));
  allow_smem(attention_dq_kernel<T>, dq_smem);
  attention_dq_kernel<T><<<q_blocks, kThreads, dq_smem, stream>>>(dq, dout, q, k, v, ldv, lse, D, s, scale);
  HYMBA_CUDA_CHECK_LAUNCH();

  const unsigned kv_blocks = row_blocks(s, s.nkv, "attention_backward");
  const size_t kv_smem = sizeof(float) * size_t(kTileRows * (s.hd + s.vd) + kTile * (s.hd + 1) +
                                                kTile * (s.vd + 1) + 2 * kTile);
  allow_smem(attention_dkdv_kernel<T>, kv_smem);
  attention_dkdv_kernel<T><<<kv_blocks, kThreads, kv_smem, stream>>>(dk, dv, dout, q, k, v, ldv, lse, D, s,
                                                           scale);
  HYMBA_CUDA_CHECK_LAUNCH();
}

template void attention_forward<float>(float*, float*, const float*, const float*, const float*,
                                       int64_t, const AttentionShape&, cudaStream_t);
template void attention_forward<bf16>(bf16*, float*, const bf16*, const bf16*, const bf16*, int64_t,
                                      const AttentionShape&, cudaStream_t);
template void attention_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, int64_t, const float*,
                                        const float*, const AttentionShape&, float*, cudaStream_t);
template void attention_backward<bf16>(bf16*, bf16*, bf16*, const bf16*, const bf16*, const bf16*,
                                       const bf16*, int64_t, const bf16*, const float*,
                                       const AttentionShape&, float*, cudaStream_t);

}  // namespace hymba::cuda
