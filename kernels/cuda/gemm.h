// GEMMs on the GPU through cuBLASLt, with the row-major conventions of kernels/cpu/gemm.h.
// fp32 accumulation always; A and B are float (the fp32 path: true fp32, no TF32) or bf16; C is
// the same type, or float (weight gradients of the bf16 path accumulate in fp32).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <map>
#include <tuple>

namespace hymba::cuda {

// One cuBLASLt handle, its workspace, and the plan (descriptors + chosen algorithm) of every GEMM
// shape seen so far: a training step repeats the same few shapes, so each is planned once.
class Gemm {
 public:
  static constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // what cuBLAS recommends for Hopper

  explicit Gemm(cudaStream_t stream);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // Row-major C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] + beta · C; op(X) = Xᵀ when trans_x (then
  // X is stored [K,M] / [N,K]). With beta = 0, C is not read.
  template <class TA, class TC>
  void run(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const TA* A,
           int64_t lda, const TA* B, int64_t ldb, float beta, TC* C, int64_t ldc);

 private:
  struct Plan;
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, bool>;
  Plan& plan(const Key& key);

  cublasLtHandle_t handle_ = nullptr;
  cudaStream_t stream_;
  void* workspace_ = nullptr;
  std::map<Key, Plan*> plans_;
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
