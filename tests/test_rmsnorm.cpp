// RMSNorm: forward against the formula, backward against finite differences, with strided rows.
#include <gtest/gtest.h>

#include <cmath>

#include "cpu/rmsnorm.h"
#include "gradcheck.h"

namespace hymba::test {
namespace {

TEST(RmsNorm, ForwardMatchesFormula) {
  const int64_t rows = 5, dim = 7, ld = 10;
  const double eps = 1e-6;
  auto x = random_vector(rows * ld, 1), w = random_vector(dim, 2);
  std::vector<float> y(rows * dim), rstd(rows);
  auto xf = cast_vector<float>(x), wf = cast_vector<float>(w);
  cpu::rmsnorm_forward(y.data(), dim, rstd.data(), xf.data(), ld, wf.data(), rows, dim, eps);
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0;
    for (int64_t i = 0; i < dim; ++i) ms += x[r * ld + i] * x[r * ld + i] / dim;
    for (int64_t i = 0; i < dim; ++i) {
      const double want = w[i] * x[r * ld + i] / std::sqrt(ms + eps);
      EXPECT_NEAR(y[r * dim + i], want, 1e-5 * (1 + std::abs(want)));
    }
  }
}

// With `average` the forward leaves y = (y + norm) · 0.5, the norm rounded to T first (the fusion
// of two branches in one pass): the same bits as the plain forward followed by the average, in
// both forms (whole rows, and from the rows' sums of squares).
TEST(RmsNorm, AveragingForwardIsTheNormAveragedIntoY) {
  const int64_t rows = 6, dim = 9, ld = 11;
  const double eps = 1e-6;
  const auto x = cast_vector<float>(random_vector(rows * ld, 3)), w = cast_vector<float>(random_vector(dim, 4));
  const auto other = cast_vector<float>(random_vector(rows * ld, 5));  // [rows, ld]: y before
  std::vector<float> norm(rows * ld, 0.f), rstd(rows), want = other;
  cpu::rmsnorm_forward(norm.data(), ld, rstd.data(), x.data(), ld, w.data(), rows, dim, eps);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < dim; ++i) want[r * ld + i] = (other[r * ld + i] + norm[r * ld + i]) * 0.5f;

  std::vector<float> y = other, rstd_avg(rows);
  cpu::rmsnorm_forward(y.data(), ld, rstd_avg.data(), x.data(), ld, w.data(), rows, dim, eps, /*average=*/true);
  EXPECT_EQ(y, want);  // the columns past dim untouched too
  EXPECT_EQ(rstd_avg, rstd);

  // From the sums (rounded to float, so the norm's bits may differ from the whole rows' form).
  std::vector<float> sums(rows), norm_s(rows * ld, 0.f), ys = other, want_s = other;
  cpu::rmsnorm_sum_squares(sums.data(), x.data(), ld, rows, dim);
  cpu::rmsnorm_forward_from_sums(norm_s.data(), ld, rstd.data(), x.data(), ld, w.data(), sums.data(), rows, dim, dim,
                                 eps);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < dim; ++i) want_s[r * ld + i] = (other[r * ld + i] + norm_s[r * ld + i]) * 0.5f;
  cpu::rmsnorm_forward_from_sums(ys.data(), ld, rstd.data(), x.data(), ld, w.data(), sums.data(), rows, dim, dim,
                                 eps, /*average=*/true);
  EXPECT_EQ(ys, want_s);
}

TEST(RmsNorm, BackwardMatchesFiniteDifferences) {
  for (int64_t dim : {1, 3, 16, 33}) {
    const int64_t rows = 6, ldx = dim + 2, ldy = dim + 1;
    auto x = random_vector(rows * ldx, 3 + dim), w = random_vector(dim, 4 + dim);
    for (double& v : w) v += 1.5;  // norm weights live around 1
    const auto r = random_vector(rows * ldy, 5 + dim);
    auto forward = [&](std::vector<double>& y, std::vector<double>& rstd) {
      cpu::rmsnorm_forward(y.data(), ldy, rstd.data(), x.data(), ldx, w.data(), rows, dim, 1e-6);
    };
    auto loss = [&] {
      std::vector<double> y(rows * ldy, 0.0), rstd(rows);
      forward(y, rstd);
      return dot(y, r);
    };
    std::vector<double> y(rows * ldy, 0.0), rstd(rows), dx(rows * ldx, 0.0), dw(dim, 0.0);
    forward(y, rstd);
    cpu::rmsnorm_backward(dx.data(), ldx, dw.data(), r.data(), ldy, x.data(), ldx, w.data(),
                          rstd.data(), rows, dim);
    SCOPED_TRACE(dim);
    GradCheckOptions opt;
    opt.require_nonzero = dim > 1;  // with one element, x / |x| has zero derivative in x
    check_gradients({{"x", &x, &dx}}, loss, opt);
    check_gradients({{"w", &w, &dw}}, loss);
  }
}

TEST(RmsNorm, AccumulatesWeightGradientAndOptionallyInputGradient) {
  const int64_t rows = 4, dim = 5;
  auto x = random_vector(rows * dim, 9), w = random_vector(dim, 10), dy = random_vector(rows * dim, 11);
  std::vector<double> y(rows * dim), rstd(rows), dx(rows * dim, 0.0), dw(dim, 0.0);
  cpu::rmsnorm_forward(y.data(), dim, rstd.data(), x.data(), dim, w.data(), rows, dim, 1e-6);
  cpu::rmsnorm_backward(dx.data(), dim, dw.data(), dy.data(), dim, x.data(), dim, w.data(), rstd.data(), rows, dim);
  auto dx1 = dx, dw1 = dw;
  cpu::rmsnorm_backward(dx.data(), dim, dw.data(), dy.data(), dim, x.data(), dim, w.data(), rstd.data(), rows, dim,
                        /*accumulate_dx=*/true);
  for (int64_t i = 0; i < dim; ++i) EXPECT_NEAR(dw[i], 2 * dw1[i], 1e-14);
  for (int64_t i = 0; i < rows * dim; ++i) EXPECT_NEAR(dx[i], 2 * dx1[i], 1e-14);
}

}  // namespace
}  // namespace hymba::test
