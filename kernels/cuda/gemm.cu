#include "cuda/gemm.h"

#include <cuda_bf16.h>

#include <algorithm>
#include <cstring>

#include "core/cuda_check.h"

namespace hymba::cuda {

namespace {

#define HYMBA_CUBLAS_CHECK(call)                                                        \
  do {                                                                                  \
    const cublasStatus_t hymba_cublas_status_ = (call);                                 \
    if (hymba_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                \
      ::hymba::fail(__FILE__, ":", __LINE__, ": ", #call, ": ",                         \
                    cublasLtGetStatusString(hymba_cublas_status_));                       \
    }                                                                                   \
  } while (0)

template <class T>
cudaDataType_t data_type();
template <>
cudaDataType_t data_type<float>() { return CUDA_R_32F; }
template <>
cudaDataType_t data_type<__nv_bfloat16>() { return CUDA_R_16BF; }

static_assert(sizeof(cublasLtMatmulAlgo_t) == kGemmAlgoWords * sizeof(int64_t), "gemm_choices.h's algorithm words");

}  // namespace

// Descriptors in cuBLASLt's column-major terms. A row-major [r, c] matrix with leading dimension
// ld is the column-major [c, r] matrix with the same ld, so row-major C = op(A)·op(B) is computed
// as column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: B's storage goes first.
struct Gemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t first = nullptr, second = nullptr, out = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool chosen = false;  // algo is set (chosen here, or adopted)
  ~Plan() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    if (first) cublasLtMatrixLayoutDestroy(first);
    if (second) cublasLtMatrixLayoutDestroy(second);
    if (out) cublasLtMatrixLayoutDestroy(out);
  }
};

Gemm::Gemm(cudaStream_t stream) : stream_(stream) {
  HYMBA_CUBLAS_CHECK(cublasLtCreate(&handle_));
  HYMBA_CUDA_CHECK(cudaMalloc(&workspace_, kWorkspaceBytes));
}

Gemm::~Gemm() {
  for (auto& [key, p] : plans_) delete p;
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

Gemm::Plan& Gemm::plan(const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  const auto [trans_a, trans_b, M, N, K, lda, ldb, ldc, type_ab, type_c, beta_nonzero] = key;
  const auto ab = cudaDataType_t(type_ab), c = cudaDataType_t(type_c);
  auto* p = new Plan;
  plans_[key] = p;
  HYMBA_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_first = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  HYMBA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof op_first));
  HYMBA_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof op_second));
  // Column-major shapes: the result is [N, M]; the first operand is op⁻¹ of [N, K], the second of [K, M].
  HYMBA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->first, ab, trans_b ? K : N, trans_b ? N : K, ldb));
  HYMBA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->second, ab, trans_a ? M : K, trans_a ? K : M, lda));
  HYMBA_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->out, c, N, M, ldc));
  return *p;
}

cublasStatus_t Gemm::matmul(const Plan& p, const cublasLtMatmulAlgo_t& algo, float alpha, const void* A,
                            const void* B, float beta, const void* C, void* D) {
  // Column-major: the row-major product A·B is Bᵀ·Aᵀ to cuBLASLt, so B goes first.
  return cublasLtMatmul(handle_, p.desc, &alpha, B, p.first, A, p.second, &beta, C, p.out, D, p.out, &algo,
                        workspace_, kWorkspaceBytes, stream_);
}

std::vector<cublasLtMatmulHeuristicResult_t> Gemm::candidates(const Key& key, const Plan& p, int count) {
  cublasLtMatmulPreference_t pref;
  HYMBA_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t bytes = kWorkspaceBytes;
  HYMBA_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &bytes, sizeof bytes));
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(count));
  int found = 0;
  const cublasStatus_t status = cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.first, p.second, p.out, p.out,
                                                               pref, count, results.data(), &found);
  cublasLtMatmulPreferenceDestroy(pref);
  HYMBA_CUBLAS_CHECK(status);
  if (found == 0) {
    const auto [trans_a, trans_b, M, N, K, lda, ldb, ldc, type_ab, type_c, beta_nonzero] = key;
    fail("cuBLASLt has no algorithm for the GEMM M=", M, " N=", N, " K=", K, " lda=", lda, " ldb=", ldb,
         " ldc=", ldc, " (beta ", beta_nonzero ? "nonzero" : "zero", ")");
  }
  results.resize(size_t(found));
  return results;
}

namespace {

// Device memory that may not be there: empty when cudaMalloc finds too little free.
struct OptionalScratch {
  void* p = nullptr;
  explicit OptionalScratch(size_t bytes) {
    if (bytes > 0 && cudaMalloc(&p, bytes) != cudaSuccess) {
      (void)cudaGetLastError();  // clears the allocation error
      p = nullptr;
    }
  }
  ~OptionalScratch() {
    if (p) cudaFree(p);
  }
};

// One launch's start and stop events.
struct EventPair {
  cudaEvent_t start = nullptr, stop = nullptr;
  EventPair() {
    HYMBA_CUDA_CHECK(cudaEventCreate(&start));
    HYMBA_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~EventPair() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  float ms() const {
    float t = 0;
    HYMBA_CUDA_CHECK(cudaEventElapsedTime(&t, start, stop));
    return t;
  }
};

}  // namespace

template <class TA, class TC>
void Gemm::choose(const Key& key, Plan& p, float alpha, const TA* A, const TA* B, float beta, TC* C) {
  const auto results = candidates(key, p, timing_ ? kTimedCandidates : 1);
  p.algo = results[0].algo;
  p.chosen = true;
  if (results.size() == 1) return;
  // The candidates write the result in place where C is not read (beta 0: the real run writes it
  // again); with beta != 0 they read C and write a scratch copy, so C keeps its values.
  const auto [trans_a, trans_b, M, N, K, lda, ldb, ldc, type_ab, type_c, beta_nonzero] = key;
  OptionalScratch scratch(beta_nonzero ? size_t(M) * size_t(ldc) * sizeof(TC) : 0);
  if (beta_nonzero && !scratch.p) {
    ++counts_.untimed;  // too little free memory for the scratch: the heuristic's first stays
    return;
  }
  TC* D = beta_nonzero ? static_cast<TC*>(scratch.p) : C;
  const size_t n = results.size();
  auto launch = [&](size_t i) { return matmul(p, results[i].algo, alpha, A, B, beta, C, D); };
  std::vector<bool> runs(n);
  for (size_t i = 0; i < n; ++i) runs[i] = launch(i) == CUBLAS_STATUS_SUCCESS;  // warm-ups; one that fails is skipped
  if (!runs[0]) fail("cuBLASLt's first algorithm for the GEMM M=", M, " N=", N, " K=", K, " does not run");
  // Rounds that take each candidate in turn, so a drift of the clocks reaches all alike; the
  // median of a candidate's rounds is its time.
  std::vector<EventPair> events(n * kTimedRounds);
  for (int r = 0; r < kTimedRounds; ++r) {
    for (size_t i = 0; i < n; ++i) {
      if (!runs[i]) continue;
      const EventPair& e = events[size_t(r) * n + i];
      HYMBA_CUDA_CHECK(cudaEventRecord(e.start, stream_));
      HYMBA_CUBLAS_CHECK(launch(i));
      HYMBA_CUDA_CHECK(cudaEventRecord(e.stop, stream_));
    }
  }
  HYMBA_CUDA_CHECK(cudaStreamSynchronize(stream_));
  std::vector<float> median(n, 0.0f), rounds(kTimedRounds);
  for (size_t i = 0; i < n; ++i) {
    if (!runs[i]) continue;
    for (int r = 0; r < kTimedRounds; ++r) rounds[size_t(r)] = events[size_t(r) * n + i].ms();
    std::nth_element(rounds.begin(), rounds.begin() + kTimedRounds / 2, rounds.end());
    median[i] = rounds[kTimedRounds / 2];
  }
  // Another candidate replaces the first only when clearly faster: the fastest of 8 noisy times
  // is biased low.
  size_t best = 0;
  for (size_t i = 1; i < n; ++i) {
    if (runs[i] && median[i] < median[best] && median[i] < (1.0f - kTimedMargin) * median[0]) best = i;
  }
  p.algo = results[best].algo;
  ++counts_.timed;
  counts_.changed += best != 0;
}

int64_t Gemm::library_version() { return int64_t(cublasLtGetVersion()); }

GemmChoices Gemm::choices() const {
  GemmChoices out;
  out.library_version = library_version();
  for (const auto& [key, p] : plans_) {
    if (!p->chosen) continue;
    const auto [trans_a, trans_b, M, N, K, lda, ldb, ldc, type_ab, type_c, beta_nonzero] = key;
    GemmChoice c{trans_a, trans_b, M, N, K, lda, ldb, ldc, type_ab, type_c, beta_nonzero};
    std::memcpy(c.data() + kGemmShapeWords, &p->algo, sizeof p->algo);
    out.shapes.push_back(c);
  }
  return out;
}

int64_t Gemm::adopt(const GemmChoices& choices) {
  int64_t refused = 0;
  for (const GemmChoice& c : choices.shapes) {
    if (const std::string problem = gemm_shape_problem(c); !problem.empty()) fail("Gemm::adopt: ", problem);
    const Key key{c[0] != 0, c[1] != 0, c[2], c[3], c[4], c[5], c[6], c[7], int(c[8]), int(c[9]), c[10] != 0};
    Plan& p = plan(key);
    cublasLtMatmulAlgo_t algo;
    std::memcpy(&algo, c.data() + kGemmShapeWords, sizeof algo);
    cublasLtMatmulHeuristicResult_t check{};
    const bool runs = choices.library_version == library_version() &&
                      cublasLtMatmulAlgoCheck(handle_, p.desc, p.first, p.second, p.out, p.out, &algo, &check) ==
                          CUBLAS_STATUS_SUCCESS &&
                      check.workspaceSize <= kWorkspaceBytes;
    p.chosen = runs;
    if (runs) p.algo = algo;
    refused += !runs;
  }
  return refused;
}

template <class TA, class TC>
void Gemm::run(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const TA* A,
               int64_t lda, const TA* B, int64_t ldb, float beta, TC* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) fail("Gemm::run: K = 0 is not supported");  // nothing in the model has it
  const Key key{trans_a, trans_b, M, N, K, lda, ldb, ldc, int(data_type<TA>()), int(data_type<TC>()), beta != 0.0f};
  Plan& p = plan(key);
  if (!p.chosen) choose(key, p, alpha, A, B, beta, C);
  HYMBA_CUBLAS_CHECK(matmul(p, p.algo, alpha, A, B, beta, C, C));
}

template <class T>
void linear_forward(Gemm& gemm, T* y, int64_t ldy, const T* x, int64_t ldx, const T* w, int64_t rows,
                    int64_t in, int64_t out, bool accumulate) {
  gemm.run<T, T>(false, true, rows, out, in, 1.0f, x, ldx, w, in, accumulate ? 1.0f : 0.0f, y, ldy);
}

template <class T>
void linear_backward(Gemm& gemm, T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy, const T* x,
                     int64_t ldx, const T* w, int64_t rows, int64_t in, int64_t out, bool accumulate_dx,
                     float dx_alpha) {
  if (dx) {
    gemm.run<T, T>(false, false, rows, in, out, dx_alpha, dy, lddy, w, in, accumulate_dx ? 1.0f : 0.0f, dx,
                   lddx);  // [rows, in] = [rows, out] · [out, in]
  }
  gemm.run<T, float>(true, false, out, in, rows, 1.0f, dy, lddy, x, ldx, 1.0f, dw,
                     in);  // [out, in] += [rows, out]ᵀ · [rows, in]
}

template void Gemm::run<float, float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                      const float*, int64_t, float, float*, int64_t);
template void Gemm::run<__nv_bfloat16, __nv_bfloat16>(bool, bool, int64_t, int64_t, int64_t, float,
                                                      const __nv_bfloat16*, int64_t, const __nv_bfloat16*,
                                                      int64_t, float, __nv_bfloat16*, int64_t);
template void Gemm::run<__nv_bfloat16, float>(bool, bool, int64_t, int64_t, int64_t, float, const __nv_bfloat16*,
                                              int64_t, const __nv_bfloat16*, int64_t, float, float*, int64_t);
#define HYMBA_INSTANTIATE(T)                                                                          \
  template void linear_forward<T>(Gemm&, T*, int64_t, const T*, int64_t, const T*, int64_t, int64_t, \
                                  int64_t, bool);                                                     \
  template void linear_backward<T>(Gemm&, T*, int64_t, float*, const T*, int64_t, const T*, int64_t,  \
                                   const T*, int64_t, int64_t, int64_t, bool, float);
HYMBA_INSTANTIATE(float)
HYMBA_INSTANTIATE(__nv_bfloat16)
#undef HYMBA_INSTANTIATE

}  // namespace hymba::cuda
