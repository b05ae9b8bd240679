// Embedding lookup with the meta-token prepend, and its backward.
//
// Backward without atomics: many positions may share an id (a common token, a batch of repeats),
// and float atomics would add them in a different order on every run. Instead the host, which
// holds the batch's ids anyway, sorts the positions by (id, position) and hands the GPU a plan:
// one run of dx rows per distinct id. Each run is summed by its own block(s) in a fixed order and
// added once into its table row. Short runs (most ids) get one block over all H columns; long
// runs are spread over column tiles with the positions split across warps, so a frequent id is
// not left to a single block.
#include "cuda/embedding.h"

#include <algorithm>
#include <climits>
#include <memory>
#include <vector>

#include "core/cuda_check.h"
#include "cuda/dtype.cuh"

namespace hymba::cuda {

namespace {

constexpr int kThreads = 256;
// Runs longer than this go to the tiled kernel: it reads kTileCols columns of kGroups rows at once.
constexpr int64_t kShortRun = 16;
constexpr int kTileCols = 32;
constexpr int kGroups = kThreads / kTileCols;
constexpr int kMetaBlocks = 1024;

// dst [H] = src [H] in T, or zeros for a null src.
template <class T, class S>
__device__ void copy_row(T* dst, const S* src, int64_t H) {
  for (int64_t h = threadIdx.x; h < H; h += blockDim.x) dst[h] = from_float<T>(src ? to_float(src[h]) : 0.0f);
}

// One block per row r of x (b = r / S, s = r % S), threads over the H columns. Ids outside
// [begin, end) (another rank's table rows) and meta rows without meta give zero rows.
template <class T>
__global__ void embedding_forward_kernel(T* x, const int32_t* ids, const T* table, const float* meta,
                               int64_t Tlen, int64_t M, int64_t H, int64_t begin, int64_t end) {
  const int64_t r = blockIdx.x, S = M + Tlen, b = r / S, s = r % S;
  T* dst = x + r * H;  // [H]
  if (s < M) {
    copy_row(dst, meta ? meta + s * H : nullptr, H);
  } else {
    const int64_t id = ids[b * Tlen + s - M];
    copy_row(dst, id >= begin && id < end ? table + (id - begin) * H : nullptr, H);
  }
}

// dmeta[m, h] += Σ_b dx[b, m, h], b in order. i = m·H + h runs over the M·H meta values.
template <class T>
__global__ void meta_grad_kernel(float* dmeta, const T* dx, int64_t B, int64_t S, int64_t H,
                                 int64_t MH) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < MH;
       i += int64_t(gridDim.x) * blockDim.x) {
    float acc = 0;
    for (int64_t b = 0; b < B; ++b) acc += to_float(dx[b * S * H + i]);
    dmeta[i] += acc;
  }
}

// One block per short run: runs[3·blockIdx.x ..] = (id, first, end) into rows (the dx rows of
// that id, in position order). Each thread owns columns h, summing the run's rows in order.
template <class T>
__global__ void table_grad_short_kernel(float* dtable, const T* dx, const int32_t* rows,
                                        const int32_t* runs, int64_t H) {
  const int32_t* run = runs + 3 * int64_t(blockIdx.x);
  const int64_t id = run[0];
  const int32_t first = run[1], end = run[2];
  float* dst = dtable + id * H;  // [H]
  for (int64_t h = threadIdx.x; h < H; h += blockDim.x) {
    float acc = 0;
    for (int32_t i = first; i < end; ++i) acc += to_float(dx[int64_t(rows[i]) * H + h]);
    dst[h] += acc;
  }
}

// Block (run, tile) of a long run: columns tile·kTileCols + lane; warp g sums the rows
// first + g, first + g + kGroups, ... in order, and the kGroups partials are added in warp order.
template <class T>
__global__ void table_grad_long_kernel(float* dtable, const T* dx, const int32_t* rows,
                                       const int32_t* runs, int64_t H) {
  __shared__ float partial[kGroups][kTileCols];
  const int lane = threadIdx.x % kTileCols, group = threadIdx.x / kTileCols;
  const int32_t* run = runs + 3 * int64_t(blockIdx.x);
  const int64_t id = run[0];
  const int32_t first = run[1], end = run[2];
  const int64_t h = int64_t(blockIdx.y) * kTileCols + lane;
  float acc = 0;
  if (h < H) {
    for (int32_t i = first + group; i < end; i += kGroups) acc += to_float(dx[int64_t(rows[i]) * H + h]);
  }
  partial[group][lane] = acc;
  __syncthreads();
  if (group == 0 && h < H) {
    float sum = 0;
    for (int g = 0; g < kGroups; ++g) sum += partial[g][lane];
    dtable[id * H + h] += sum;
  }
}

void CUDART_CB release_plan(void* plan) { delete static_cast<std::vector<int32_t>*>(plan); }

}  // namespace

template <class T>
void embedding_forward(T* x, const int32_t* ids, const T* table, const float* meta, int64_t B,
                       int64_t Tlen, int64_t M, int64_t H, cudaStream_t stream, cpu::VocabRange vocab) {
  const int64_t rows = B * (M + Tlen);
  if (rows == 0 || H == 0) return;
  if (rows > INT_MAX) fail("embedding_forward: ", rows, " rows of x are above the supported ", INT_MAX);
  embedding_forward_kernel<<<unsigned(rows), kThreads, 0, stream>>>(x, ids, table, meta, Tlen, M, H, vocab.begin, vocab.end);
  HYMBA_CUDA_CHECK_LAUNCH();
}

int64_t embedding_backward_workspace(int64_t B, int64_t Tlen) { return 4 * B * Tlen; }

template <class T>
void embedding_backward(float* dtable, float* dmeta, const T* dx, const int32_t* ids_host, int64_t B,
                        int64_t Tlen, int64_t M, int64_t H, int64_t pad_id, int32_t* workspace,
                        cudaStream_t stream, cpu::VocabRange vocab) {
  const int64_t S = M + Tlen;
  if (B == 0 || H == 0) return;
  // The plan holds dx row numbers and offsets into itself as int32.
  if (B * S > INT_MAX || embedding_backward_workspace(B, Tlen) > INT_MAX) {
    fail("embedding_backward: B = ", B, ", S = ", S, " is above the supported ", INT_MAX, " rows");
  }
  if ((H + kTileCols - 1) / kTileCols > 65535) {
    fail("embedding_backward: H = ", H, " is above the supported ", 65535 * kTileCols);
  }

  if (M > 0) {
    const int64_t MH = M * H;
    const int blocks = int(std::min<int64_t>((MH + kThreads - 1) / kThreads, kMetaBlocks));
    meta_grad_kernel<<<blocks, kThreads, 0, stream>>>(dmeta, dx, B, S, H, MH);
    HYMBA_CUDA_CHECK_LAUNCH();
  }

  // Positions p = b·T + t that train a row of this table (not padding, an id it holds), sorted by
  // (id, p): stable over increasing p.
  const int64_t BT = B * Tlen;
  std::vector<int32_t> pos;
  pos.reserve(size_t(BT));
  for (int64_t p = 0; p < BT; ++p) {
    if (ids_host[p] != pad_id && vocab.holds(ids_host[p])) pos.push_back(int32_t(p));
  }
  if (pos.empty()) return;
  std::stable_sort(pos.begin(), pos.end(),
                   [&](int32_t a, int32_t b) { return ids_host[a] < ids_host[b]; });
  const int64_t n = int64_t(pos.size());

  // plan = rows [n] (the dx row b·S + M + t of each sorted position) | short runs | long runs,
  // each run 3 values (table row id − vocab.begin, first, end) with [first, end) indexing rows.
  auto plan = std::make_unique<std::vector<int32_t>>();
  plan->reserve(size_t(4 * n));
  for (const int32_t p : pos) plan->push_back(int32_t(p / Tlen * S + M + p % Tlen));
  std::vector<int32_t> long_runs;
  for (int64_t i = 0; i < n;) {
    const int32_t id = ids_host[pos[i]];
    int64_t j = i + 1;
    while (j < n && ids_host[pos[j]] == id) ++j;
    std::vector<int32_t>& dst = j - i > kShortRun ? long_runs : *plan;
    dst.insert(dst.end(), {int32_t(id - vocab.begin), int32_t(i), int32_t(j)});
    i = j;
  }
  const int64_t num_short = (int64_t(plan->size()) - n) / 3, num_long = int64_t(long_runs.size()) / 3;
  plan->insert(plan->end(), long_runs.begin(), long_runs.end());

  // The copy reads `plan` whenever the stream reaches it (a pageable source may or may not be
  // staged before cudaMemcpyAsync returns), so the plan is freed by a host function queued right
  // after it: that runs once everything before it on the stream, the copy included, is done.
  HYMBA_CUDA_CHECK(cudaMemcpyAsync(workspace, plan->data(), plan->size() * sizeof(int32_t),
                                   cudaMemcpyHostToDevice, stream));
  HYMBA_CUDA_CHECK(cudaLaunchHostFunc(stream, release_plan, plan.get()));
  plan.release();  // now owned by the queued host function

  const int32_t* rows = workspace;                            // [n]
  const int32_t* short_runs = workspace + n;                  // [num_short, 3]
  const int32_t* long_run_list = short_runs + 3 * num_short;  // [num_long, 3]
  if (num_short > 0) {
    table_grad_short_kernel<<<unsigned(num_short), kThreads, 0, stream>>>(dtable, dx, rows, short_runs, H);
    HYMBA_CUDA_CHECK_LAUNCH();
  }
  if (num_long > 0) {
    const dim3 grid(unsigned(num_long), unsigned((H + kTileCols - 1) / kTileCols));
    table_grad_long_kernel<<<grid, kThreads, 0, stream>>>(dtable, dx, rows, long_run_list, H);
    HYMBA_CUDA_CHECK_LAUNCH();
  }
}

template void embedding_forward<float>(float*, const int32_t*, const float*, const float*, int64_t,
                                       int64_t, int64_t, int64_t, cudaStream_t, cpu::VocabRange);
template void embedding_forward<bf16>(bf16*, const int32_t*, const bf16*, const float*, int64_t,
                                      int64_t, int64_t, int64_t, cudaStream_t, cpu::VocabRange);
template void embedding_backward<float>(float*, float*, const float*, const int32_t*, int64_t,
                                        int64_t, int64_t, int64_t, int64_t, int32_t*, cudaStream_t,
                                        cpu::VocabRange);
template void embedding_backward<bf16>(float*, float*, const bf16*, const int32_t*, int64_t, int64_t,
                                       int64_t, int64_t, int64_t, int32_t*, cudaStream_t, cpu::VocabRange);

}  // namespace hymba::cuda
