#include "cpu/gemm.h"

#include <algorithm>
#include <vector>

#include "cpu/parallel.h"

namespace hymba::cpu {

namespace {

// C[i, :] += Σ_k a(i,k) · Bk[k, :] for a block of up to 4 rows at once, so each row of Bk is
// loaded once per 4 output rows. The inner loop runs over contiguous memory and vectorises
// without -ffast-math (no reduction).
template <class T, int R>
void rows_times_b(T* const* c, const T* const* a, int64_t a_step, int64_t N, int64_t K,
                  const T* Bk, int64_t ldbk) {
  for (int64_t k = 0; k < K; ++k) {
    T ak[R];
    for (int r = 0; r < R; ++r) ak[r] = a[r][k * a_step];
    const T* b = Bk + k * ldbk;
    for (int64_t n = 0; n < N; ++n) {
      const T bn = b[n];
      for (int r = 0; r < R; ++r) c[r][n] += ak[r] * bn;
    }
  }
}

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  // The kernel wants rows of op(B) contiguous. op(B) = Bᵀ (B stored [N, K]) is packed into
  // [K, N] first: O(N·K) work against O(M·N·K) for the product.
  std::vector<T> packed;
  const T* Bk = B;
  int64_t ldbk = ldb;
  if (trans_b) {
    packed.resize(static_cast<size_t>(K * N));
#pragma omp parallel for schedule(static) if (N * K >= kMinParallelWork)
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t k = 0; k < K; ++k) packed[k * N + n] = B[n * ldb + k];
    }
    Bk = packed.data();
    ldbk = N;
  }
  // a(i, k) = A[i, k] or A[k, i]: the row pointer of row i and the step between its k's.
  const int64_t a_row = trans_a ? 1 : lda;
  const int64_t a_step = trans_a ? lda : 1;
  constexpr int64_t R = 4;
#pragma omp parallel for schedule(static) if (M * N * K >= kMinParallelWork)
  for (int64_t i0 = 0; i0 < M; i0 += R) {
    const int64_t rows = std::min(R, M - i0);
    std::vector<T> acc(static_cast<size_t>(rows * N), T(0));  // [rows, N]
    T* c[R] = {};  // initialised: gcc 13 cannot see that only rows < R are read
    const T* a[R] = {};
    for (int64_t r = 0; r < rows; ++r) {
      c[r] = acc.data() + r * N;
      a[r] = A + (i0 + r) * a_row;
    }
    switch (rows) {
      case 4: rows_times_b<T, 4>(c, a, a_step, N, K, Bk, ldbk); break;
      case 3: rows_times_b<T, 3>(c, a, a_step, N, K, Bk, ldbk); break;
      case 2: rows_times_b<T, 2>(c, a, a_step, N, K, Bk, ldbk); break;
      default: rows_times_b<T, 1>(c, a, a_step, N, K, Bk, ldbk); break;
    }
    // beta == 0 overwrites C without reading it, so C may start uninitialised (BLAS semantics).
    for (int64_t r = 0; r < rows; ++r) {
      T* out = C + (i0 + r) * ldc;
      for (int64_t n = 0; n < N; ++n) {
        out[n] = beta == T(0) ? alpha * c[r][n] : alpha * c[r][n] + beta * out[n];
      }
    }
  }
}

template <class T>
void linear_forward(T* y, int64_t ldy, const T* x, int64_t ldx, const T* w, int64_t rows,
                    int64_t in, int64_t out, bool accumulate) {
  gemm<T>(false, true, rows, out, in, T(1), x, ldx, w, in, accumulate ? T(1) : T(0), y, ldy);
}

template <class T>
void linear_backward(T* dx, int64_t lddx, T* dw, const T* dy, int64_t lddy, const T* x,
                     int64_t ldx, const T* w, int64_t rows, int64_t in, int64_t out,
                     bool accumulate_dx, double dx_alpha) {
  if (dx) {
    gemm<T>(false, false, rows, in, out, T(dx_alpha), dy, lddy, w, in, accumulate_dx ? T(1) : T(0), dx,
            lddx);  // [rows, in] = [rows, out] · [out, in]
  }
  gemm<T>(true, false, out, in, rows, T(1), dy, lddy, x, ldx, T(1), dw,
          in);  // [out, in] += [rows, out]ᵀ · [rows, in]
}

#define HYMBA_INSTANTIATE(T)                                                                  \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, \
                        int64_t, T, T*, int64_t);                                             \
  template void linear_forward<T>(T*, int64_t, const T*, int64_t, const T*, int64_t, int64_t, \
                                  int64_t, bool);                                             \
  template void linear_backward<T>(T*, int64_t, T*, const T*, int64_t, const T*, int64_t,     \
                                   const T*, int64_t, int64_t, int64_t, bool, double);
HYMBA_INSTANTIATE(float)
HYMBA_INSTANTIATE(double)
#undef HYMBA_INSTANTIATE

}  // namespace hymba::cpu
