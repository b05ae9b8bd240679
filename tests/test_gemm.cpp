// GEMM against a naive triple loop (all transpose combinations, leading dimensions wider than the
// matrix, alpha/beta), and the Linear backward against finite differences.
#include <gtest/gtest.h>

#include "cpu/gemm.h"
#include "gradcheck.h"

namespace hymba::test {
namespace {

// C = alpha·op(A)·op(B) + beta·C, element by element.
void naive_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                const std::vector<double>& A, int64_t lda, const std::vector<double>& B,
                int64_t ldb, double beta, std::vector<double>& C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        s += (ta ? A[k * lda + i] : A[i * lda + k]) * (tb ? B[j * ldb + k] : B[k * ldb + j]);
      }
      C[i * ldc + j] = alpha * s + beta * C[i * ldc + j];
    }
  }
}

template <class T>
void check_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, double beta,
                double tol) {
  const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
  auto A = random_vector((ta ? K : M) * lda, 1), B = random_vector((tb ? N : K) * ldb, 2);
  auto C = random_vector(M * ldc, 3);
  auto expected = C;
  naive_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, expected, ldc);
  auto a = cast_vector<T>(A), b = cast_vector<T>(B), c = cast_vector<T>(C);
  cpu::gemm<T>(ta, tb, M, N, K, T(alpha), a.data(), lda, b.data(), ldb, T(beta), c.data(), ldc);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < ldc; ++j) {
      const double want = j < N ? expected[i * ldc + j] : C[i * ldc + j];  // padding untouched
      ASSERT_NEAR(c[i * ldc + j], want, tol * (1 + std::abs(want))) << i << "," << j;
    }
  }
}

TEST(Gemm, MatchesNaiveForEveryTransposeCombination) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      check_gemm<double>(ta, tb, 7, 13, 5, 1.0, 0.0, 1e-12);
      check_gemm<double>(ta, tb, 9, 3, 17, -0.5, 1.0, 1e-12);
      check_gemm<float>(ta, tb, 33, 21, 40, 2.0, 0.25, 1e-5);
      check_gemm<float>(ta, tb, 1, 1, 1, 1.0, 0.0, 1e-6);
    }
  }
}

TEST(Gemm, BetaZeroIgnoresGarbageInC) {
  std::vector<double> a = {1, 2}, b = {3, 4}, c = {std::nan("")};
  cpu::gemm<double>(false, true, 1, 1, 2, 1.0, a.data(), 2, b.data(), 2, 0.0, c.data(), 1);
  EXPECT_EQ(c[0], 11.0);
}

TEST(Linear, BackwardMatchesFiniteDifferences) {
  const int64_t rows = 6, in = 5, out = 4, ldx = 7, ldy = 9;
  auto x = random_vector(rows * ldx, 4), w = random_vector(out * in, 5);
  const auto r = random_vector(rows * ldy, 6);
  auto loss = [&] {
    std::vector<double> y(rows * ldy, 0.0);
    cpu::linear_forward(y.data(), ldy, x.data(), ldx, w.data(), rows, in, out);
    double s = 0;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < out; ++j) s += y[i * ldy + j] * r[i * ldy + j];
    return s;
  };
  std::vector<double> dx(rows * ldx, 0.0), dw(out * in, 0.0);
  cpu::linear_backward(dx.data(), ldx, dw.data(), r.data(), ldy, x.data(), ldx, w.data(), rows,
                       in, out);
  // dx's padding columns are outside the op: their numeric gradient is 0, and so must dx's be.
  check_gradients({{"x", &x, &dx}, {"w", &w, &dw}}, loss);
}

TEST(Linear, WeightGradientAccumulatesAndInputGradientCanAccumulate) {
  const int64_t rows = 3, in = 4, out = 2;
  auto x = random_vector(rows * in, 7), w = random_vector(out * in, 8), dy = random_vector(rows * out, 9);
  std::vector<double> dx1(rows * in, 0.0), dw1(out * in, 0.0);
  cpu::linear_backward(dx1.data(), in, dw1.data(), dy.data(), out, x.data(), in, w.data(), rows, in, out);
  auto dx2 = dx1, dw2 = dw1;
  cpu::linear_backward(dx2.data(), in, dw2.data(), dy.data(), out, x.data(), in, w.data(), rows, in, out);
  for (size_t i = 0; i < dw1.size(); ++i) EXPECT_DOUBLE_EQ(dw2[i], 2 * dw1[i]);
  for (size_t i = 0; i < dx1.size(); ++i) EXPECT_DOUBLE_EQ(dx2[i], dx1[i]);  // written, not added
  cpu::linear_backward(dx2.data(), in, dw2.data(), dy.data(), out, x.data(), in, w.data(), rows, in,
                       out, /*accumulate_dx=*/true);
  for (size_t i = 0; i < dx1.size(); ++i) EXPECT_DOUBLE_EQ(dx2[i], 2 * dx1[i]);
}

TEST(Linear, InputGradientFactorScalesDxAlone) {
  const int64_t rows = 3, in = 4, out = 2;
  auto x = random_vector(rows * in, 10), w = random_vector(out * in, 11), dy = random_vector(rows * out, 12);
  std::vector<double> dx1(rows * in, 0.0), dw1(out * in, 0.0);
  cpu::linear_backward(dx1.data(), in, dw1.data(), dy.data(), out, x.data(), in, w.data(), rows, in, out);
  std::vector<double> dx2(rows * in, 0.0), dw2(out * in, 0.0);
  cpu::linear_backward(dx2.data(), in, dw2.data(), dy.data(), out, x.data(), in, w.data(), rows, in, out,
                       /*accumulate_dx=*/false, /*dx_alpha=*/-0.75);
  for (size_t i = 0; i < dx1.size(); ++i) EXPECT_DOUBLE_EQ(dx2[i], -0.75 * dx1[i]);
  EXPECT_EQ(dw2, dw1);  // the weight gradient is not scaled
  auto dx3 = dx1;       // accumulated: the factor applies to the product, not to what dx held
  cpu::linear_backward(dx3.data(), in, dw2.data(), dy.data(), out, x.data(), in, w.data(), rows, in, out,
                       /*accumulate_dx=*/true, /*dx_alpha=*/0.5);
  for (size_t i = 0; i < dx1.size(); ++i) EXPECT_DOUBLE_EQ(dx3[i], 1.5 * dx1[i]);
}

}  // namespace
}  // namespace hymba::test
