// Fused softmax + cross-entropy: one block per row. The first pass over the row keeps a running
// (max, Σ exp(z − max)) per thread (online softmax), so the logits are read once for the
// logsumexp and once more to write the gradient, which may overwrite them in place. The
// vocabulary-parallel pair cuts that kernel at the (max, sum) pair: the partials kernel stores
// it for this rank's columns, and after the all-gather the second kernel combines the ranks'
// pairs in rank order (the same combine as the block's warps) and writes the gradient with the
// same row code.
#include "cuda/cross_entropy.h"

#include <climits>
#include <cmath>
#include <cstdint>
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

// A row of T as three runs: scalar elements up to the first 16-byte boundary, whole 16-byte packs
// (8 bf16 or 4 floats: one load or store each), and the scalar rest. `other` (the gradient row,
// which may be the row itself) must share the row's offset within 16 bytes for the packs; if it
// does not, the whole row is scalar.
template <class T>
struct RowRuns {
  static constexpr int kPack = 16 / int(sizeof(T));
  int64_t head, packs, tail;  // [0, head) scalar, packs from head, [tail, n) scalar
  __device__ RowRuns(const T* row, const void* other, int64_t n) {
    const auto offset = reinterpret_cast<uintptr_t>(row) % 16;
    const bool together = offset == reinterpret_cast<uintptr_t>(other) % 16;
    head = !together ? n : offset == 0 ? 0 : min(n, int64_t((16 - offset) / sizeof(T)));
    packs = (n - head) / kPack;
    tail = head + packs * kPack;
  }
};

// Packs a thread loads before it uses any: kLoadsAhead · 16 B · kThreads = 32 KB in flight a
// block, what keeps the memory busy (one element at a time kept it at 40-50% of its bandwidth).
constexpr int kLoadsAhead = 4;

// Calls f(first element, values) for the thread's packs of z [n] (RowRuns with `other`) in
// groups of kLoadsAhead loads, then g(element) for its scalar elements.
template <class T, class F, class G>
__device__ void for_row(const T* z, const void* other, int64_t n, F&& f, G&& g) {
  const RowRuns<T> r(z, other, n);
  using P = Pack<T, RowRuns<T>::kPack>;
  const P* packs = reinterpret_cast<const P*>(z + r.head);
  for (int64_t p0 = threadIdx.x; p0 < r.packs; p0 += int64_t(kThreads) * kLoadsAhead) {
    P x[kLoadsAhead];
#pragma unroll
    for (int u = 0; u < kLoadsAhead; ++u) {
      if (p0 + u * kThreads < r.packs) x[u] = packs[p0 + u * kThreads];
    }
#pragma unroll
    for (int u = 0; u < kLoadsAhead; ++u) {
      const int64_t p = p0 + u * kThreads;
      if (p < r.packs) f(r.head + p * RowRuns<T>::kPack, x[u]);
    }
  }
  for (int64_t v = threadIdx.x; v < r.head; v += kThreads) g(v);
  for (int64_t v = r.tail + threadIdx.x; v < n; v += kThreads) g(v);
}

// (m, s) = (max, Σ exp(z − max)) of z [n] over the block: a running pair per thread (online
// softmax, rescaled at most once a pack; a pack's terms are summed as a tree, so its adds do not
// wait on one another), then block_max_sum. Every thread gets the result. (−inf, 0) for n = 0.
template <class T>
__device__ void row_max_sum(const T* z, int64_t n, float& m, float& s) {
  m = -INFINITY, s = 0;
  auto raise_max = [&](float top) {
    if (top > m) {
      s *= expf(m - top);
      m = top;
    }
  };
  for_row(
      z, z, n,
      [&](int64_t, const auto& x) {
        constexpr int K = RowRuns<T>::kPack;
        float e[K];
#pragma unroll
        for (int i = 0; i < K; ++i) e[i] = to_float(x.v[i]);
        float top = e[0];
#pragma unroll
        for (int i = 1; i < K; ++i) top = fmaxf(top, e[i]);
        raise_max(top);
#pragma unroll
        for (int i = 0; i < K; ++i) e[i] = expf(e[i] - m);
#pragma unroll
        for (int w = K / 2; w > 0; w /= 2)
#pragma unroll
          for (int i = 0; i < w; ++i) e[i] += e[i + w];
        s += e[0];
      },
      [&](int64_t v) {
        const float zv = to_float(z[v]);
        raise_max(zv);
        s += expf(zv - m);
      });
  block_max_sum(m, s);
}

// dz [n] = (softmax − onehot(target)) · grad_scale from the row's logsumexp, target a column of
// z or outside [0, n) (no one-hot on this row part). Each element is read and then written by the
// same thread, so dz may alias z.
template <class T>
__device__ void write_row_gradient(T* dz, const T* z, int64_t n, int64_t target, float lse, float grad_scale) {
  auto gradient = [&](float zv, int64_t v) {
    const float p = expf(zv - lse);
    return from_float<T>((v == target ? p - 1.0f : p) * grad_scale);
  };
  for_row(
      z, dz, n,
      [&](int64_t first, const auto& x) {
        auto out = x;
#pragma unroll
        for (int i = 0; i < RowRuns<T>::kPack; ++i) out.v[i] = gradient(to_float(x.v[i]), first + i);
        *reinterpret_cast<decltype(out)*>(dz + first) = out;
      },
      [&](int64_t v) { dz[v] = gradient(to_float(z[v]), v); });
}

template <class T>
__device__ void zero_row(T* dz, int64_t n) {
  for (int64_t v = threadIdx.x; v < n; v += kThreads) dz[v] = from_float<T>(0.0f);
}

// A row whose target is ignored adds no loss (*loss = 0) and gets a zero gradient (dz [n], if
// not null). Returns whether the row was one; the whole block takes the same branch.
template <class T>
__device__ bool ignored_row(int32_t target, T* dz, int64_t n, float* loss) {
  if (target != kIgnoreIndex) return false;
  if (threadIdx.x == 0) *loss = 0;
  if (dz) zero_row(dz, n);
  return true;
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
  if (ignored_row(target, dz, V, loss + row)) return;
  // Read before the block reduction's barrier, i.e. before any thread overwrites the row.
  const float z_target = to_float(z[target]);
  float m, s;
  row_max_sum(z, V, m, s);
  const float lse = m + logf(s);
  if (threadIdx.x == 0) loss[row] = lse - z_target;
  if (dz) write_row_gradient(dz, z, V, target, lse, grad_scale);
}

// Vocabulary-parallel cross-entropy (cross_entropy.h): this rank's logits of ids [begin, begin +
// columns) are columns [0, columns) of rows of stride ld.

// Block `row`: stats[row] = (max, Σ exp(z − max), the target's logit if this rank holds it, else 0).
template <class T>
__global__ void partials_kernel(float* stats, const T* logits, int64_t ld, int64_t begin, int64_t columns,
                                const int32_t* targets) {
  const int64_t row = blockIdx.x;
  const T* z = logits + row * ld;  // [columns]
  float m, s;
  row_max_sum(z, columns, m, s);
  if (threadIdx.x == 0) {
    const int64_t target = targets[row];
    const bool held = target != kIgnoreIndex && target >= begin && target < begin + columns;
    float* out = stats + row * kCrossEntropyStats;  // [3]
    out[0] = m;
    out[1] = s;
    out[2] = held ? to_float(z[target - begin]) : 0.0f;
  }
}

// Block `row`: the row's (max, sum) over the whole vocabulary from every rank's stats in all
// [ranks, rows, 3], combined in rank order (by each thread: ranks is small), then loss[row] and
// this rank's columns of dz (may be z, or null) as cross_entropy_kernel does; padding columns
// [columns, ld) of dz get zero. With one rank the combine gives that rank's pair exactly, so the
// loss and gradient are cross_entropy_kernel's bits.
template <class T>
__global__ void from_partials_kernel(T* dlogits, const T* logits, int64_t ld, int64_t begin, int64_t columns,
                                     const float* all, int64_t ranks, int64_t rows, const int32_t* targets,
                                     float grad_scale, float* loss) {
  const int64_t row = blockIdx.x;
  const int32_t target = targets[row];
  const T* z = logits + row * ld;                  // [columns]
  T* dz = dlogits ? dlogits + row * ld : nullptr;  // [ld]
  if (ignored_row(target, dz, ld, loss + row)) return;
  float m = -INFINITY, s = 0, z_target = 0;  // only the rank that holds the target adds a nonzero logit
  for (int64_t q = 0; q < ranks; ++q) {
    const float* st = all + (q * rows + row) * kCrossEntropyStats;  // [3]
    combine(m, s, st[0], st[1]);
    z_target += st[2];
  }
  const float lse = m + logf(s);
  if (threadIdx.x == 0) loss[row] = lse - z_target;
  if (dz) {
    write_row_gradient(dz, z, columns, target - begin, lse, grad_scale);
    zero_row(dz + columns, ld - columns);
  }
}

void check_rows(const char* op, int64_t rows) {
  if (rows > INT_MAX) fail(op, ": ", rows, " rows are above the supported ", INT_MAX);
}

// The per-row losses [rows] come back and are summed in double in row order: the same bits every
// run. Waits for the stream.
double sum_row_losses(const float* loss_device, int64_t rows, cudaStream_t stream) {
  std::vector<float> loss(static_cast<size_t>(rows));  // [rows]
  HYMBA_CUDA_CHECK(cudaMemcpyAsync(loss.data(), loss_device, loss.size() * sizeof(float), cudaMemcpyDeviceToHost,
                                   stream));
  HYMBA_CUDA_CHECK(cudaStreamSynchronize(stream));
  double total = 0;
  for (const float l : loss) total += l;
  return total;
}

// This rank's columns of a vocabulary range, checked against the row stride.
int64_t vocab_columns(const char* op, cpu::VocabRange vocab, int64_t ld) {
  if (vocab.begin < 0 || vocab.end < vocab.begin || vocab.end - vocab.begin > ld) {
    fail(op, ": the vocabulary range [", vocab.begin, ", ", vocab.end, ") must be a range of at most ld = ", ld,
         " ids from 0");
  }
  return vocab.end - vocab.begin;
}

}  // namespace

int64_t cross_entropy_workspace(int64_t rows) { return rows; }

template <class T>
double cross_entropy(T* dlogits, const T* logits, const int32_t* targets, int64_t rows, int64_t V,
                     double grad_scale, float* workspace, cudaStream_t stream) {
  if (rows == 0) return 0;
  if (V < 1) fail("cross_entropy: vocabulary size ", V, " must be at least 1");
  check_rows("cross_entropy", rows);
  cross_entropy_kernel<<<unsigned(rows), kThreads, 0, stream>>>(dlogits, logits, targets, V,
                                                               float(grad_scale), workspace);
  HYMBA_CUDA_CHECK_LAUNCH();
  return sum_row_losses(workspace, rows, stream);
}

template <class T>
void cross_entropy_partials(float* stats, const T* logits, int64_t ld, cpu::VocabRange vocab, const int32_t* targets,
                            int64_t rows, cudaStream_t stream) {
  const int64_t columns = vocab_columns("cross_entropy_partials", vocab, ld);
  if (rows == 0) return;
  check_rows("cross_entropy_partials", rows);
  partials_kernel<<<unsigned(rows), kThreads, 0, stream>>>(stats, logits, ld, vocab.begin, columns, targets);
  HYMBA_CUDA_CHECK_LAUNCH();
}

template <class T>
double cross_entropy_from_partials(T* dlogits, const T* logits, int64_t ld, cpu::VocabRange vocab, const float* all,
                                   int64_t ranks, const int32_t* targets, int64_t rows, double grad_scale,
                                   float* workspace, cudaStream_t stream) {
  const int64_t columns = vocab_columns("cross_entropy_from_partials", vocab, ld);
  if (ranks < 1) fail("cross_entropy_from_partials: ", ranks, " ranks; there must be at least 1");
  if (rows == 0) return 0;
  check_rows("cross_entropy_from_partials", rows);
  from_partials_kernel<<<unsigned(rows), kThreads, 0, stream>>>(dlogits, logits, ld, vocab.begin, columns, all,
                                                                ranks, rows, targets, float(grad_scale), workspace);
  HYMBA_CUDA_CHECK_LAUNCH();
  return sum_row_losses(workspace, rows, stream);
}

#define HYMBA_INSTANTIATE(T)                                                                                     \
  template double cross_entropy<T>(T*, const T*, const int32_t*, int64_t, int64_t, double, float*, cudaStream_t); \
  template void cross_entropy_partials<T>(float*, const T*, int64_t, cpu::VocabRange, const int32_t*, int64_t,    \
                                          cudaStream_t);                                                          \
  template double cross_entropy_from_partials<T>(T*, const T*, int64_t, cpu::VocabRange, const float*, int64_t,   \
                                                 const int32_t*, int64_t, double, float*, cudaStream_t);
HYMBA_INSTANTIATE(float)
HYMBA_INSTANTIATE(bf16)
#undef HYMBA_INSTANTIATE

}  // namespace hymba::cuda
