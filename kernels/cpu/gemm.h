// Row-major GEMM: C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C.
// op(X) = X, or its transpose when trans_x is true (then X is stored [K,M] / [N,K]).
// Every Linear layer maps onto it: y = x · Wᵀ is gemm(false, true, ...), with W stored [out, in].
#pragma once

#include <cstdint>

namespace hymba::cpu {

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// y[rows, out] (= or += when accumulate) x[rows, in] · w[out, in]ᵀ
template <class T>
void linear_forward(T* y, int64_t ldy, const T* x, int64_t ldx, const T* w, int64_t rows,
                    int64_t in, int64_t out, bool accumulate = false);

// dx[rows, in] (= or += when accumulate_dx) dx_alpha · dy · w;  dw[out, in] += dyᵀ · x.
// dx may be null (no input gradient wanted, e.g. below the first layer). dx_alpha scales the
// input gradient alone (the model's fusion average halves it for each branch).
template <class T>
void linear_backward(T* dx, int64_t lddx, T* dw, const T* dy, int64_t lddy, const T* x,
                     int64_t ldx, const T* w, int64_t rows, int64_t in, int64_t out,
                     bool accumulate_dx = false, double dx_alpha = 1.0);

}  // namespace hymba::cpu
