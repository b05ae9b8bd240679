// GEMMs on the GPU through cuBLASLt, with the row-major conventions of kernels/cpu/gemm.h.
// fp32 accumulation always; A and B are float (the fp32 path: true fp32, no TF32) or bf16; C is
// the same type, or float (weight gradients of the bf16 path accumulate in fp32).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "io/gemm_choices.h"

namespace hymba::cuda {

// One cuBLASLt handle, its workspace, and the plan (descriptors + chosen algorithm) of every GEMM
// shape seen so far: a training step repeats the same few shapes, so each is planned once.
//
// The algorithm of a shape is cuBLASLt's first heuristic candidate, or, for shapes first seen
// while timing is on, the fastest of its first kTimedCandidates, timed on the shape's own
// operands (and faster than the first by kTimedMargin). The algorithm fixes the order of the sums,
// so its bits: choices() and adopt() carry the algorithms from one process to another (a
// checkpoint stores them; io/gemm_choices.h).
class Gemm {
 public:
  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // what cuBLAS recommends for Hopper
  static constexpr int kTimedCandidates = 8;  // past the 8th, the probe of PERF.md found nothing faster
  static constexpr int kTimedRounds = 9;      // timed runs per candidate (the median), after a warm-up
  static constexpr float kTimedMargin = 0.02f;  // how much faster than the first another must be

  explicit Gemm(cudaStream_t stream);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Row-major C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C; op(X) = Xᵀ when trans_x (then
  // X is stored [K,M] / [N,K]). With beta = 0, C is not read.
  template <class TA, class TC>
  void run(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const TA* A,
           int64_t lda, const TA* B, int64_t ldb, float beta, TC* C, int64_t ldc);

  // While on, a shape's first run times the candidates (the stream waits for each): the first
  // step of a run, not a benchmark's timed loop. Timing a shape with beta != 0 needs a scratch
  // copy of C; with too little free memory for it, the shape keeps the heuristic's first.
  void set_timing(bool on) { timing_ = on; }
  struct TimingCounts {
    int64_t timed = 0;    // shapes whose candidates were timed
    int64_t changed = 0;  // of those, where the fastest was not the heuristic's first
    int64_t untimed = 0;  // shapes seen while timing that kept the first (no memory for the scratch)
  };
  const TimingCounts& timing_counts() const { return counts_; }

  // Every planned shape and its algorithm, and cublasLtGetVersion() (an algorithm is valid with
  // the cuBLASLt that chose it). adopt() takes such a list's algorithms for their shapes,
  // replacing what was chosen; it returns the number it refused (cuBLASLt's check says they do
  // not run here), whose shapes are chosen again when next run.
  GemmChoices choices() const;
  int64_t adopt(const GemmChoices& choices);
  static int64_t library_version();  // cublasLtGetVersion()

 private:
  struct Plan;
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, bool>;
  Plan& plan(const Key& key);  // the shape's descriptors, made on first use
  // D = alpha·A·B + beta·C for plan p's shape, with `algo` (C and D may be the same matrix).
  cublasStatus_t matmul(const Plan& p, const cublasLtMatmulAlgo_t& algo, float alpha, const void* A, const void* B,
                        float beta, const void* C, void* D);
  std::vector<cublasLtMatmulHeuristicResult_t> candidates(const Key& key, const Plan& p, int count);
  template <class TA, class TC>
  void choose(const Key& key, Plan& p, float alpha, const TA* A, const TA* B, float beta, TC* C);

  cublasLtHandle_t handle_ = nullptr;
  cudaStream_t stream_;
  void* workspace_ = nullptr;
  std::map<Key, Plan*> plans_;
  bool timing_ = false;
  TimingCounts counts_;
};

// y[rows, out] (= or += when accumulate) x[rows, in] · w[out, in]ᵀ      (T: float or bf16)
template <class T>
void linear_forward(Gemm& gemm, T* y, int64_t ldy, const T* x, int64_t ldx, const T* w,
                    int64_t rows, int64_t in, int64_t out, bool accumulate = false);

// dx[rows, in] (= or += when accumulate_dx) dx_alpha · dy · w (skipped when dx is null);
// dw[out, in] (fp32) += dyᵀ · x. dx_alpha scales the input gradient alone, in the GEMM's fp32
// epilogue before the one rounding to T.
template <class T>
void linear_backward(Gemm& gemm, T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy,
                     const T* x, int64_t ldx, const T* w, int64_t rows, int64_t in, int64_t out,
                     bool accumulate_dx = false, float dx_alpha = 1.0f);

}  // namespace hymba::cuda
