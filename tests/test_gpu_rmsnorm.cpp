// The CUDA RMSNorm against the CPU reference (computed in double), on random inputs of awkward
// sizes with strided rows; fp32 must agree to a relative 1e-5. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/rmsnorm.h"
#include "gpu_test.h"
#include "gradcheck.h"

#ifdef HYMBA_HAVE_CUDA
#include "cuda/rmsnorm.h"
#endif

namespace hymba::test {
namespace {

// max |a − b| / max |b| over the elements of `b` selected by (rows, cols, ld).
double relative_error(const std::vector<float>& a, const std::vector<double>& b, int64_t rows,
                      int64_t cols, int64_t ld) {
  double diff = 0, ref = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      diff = std::max(diff, std::abs(double(a[r * ld + c]) - b[r * ld + c]));
      ref = std::max(ref, std::abs(b[r * ld + c]));
    }
  }
  return diff / std::max(ref, 1e-30);
}

TEST(GpuRmsNorm, ForwardAndBackwardMatchTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  struct Size {
    int64_t rows, dim;
  };
  for (const Size sz : {Size{1, 1}, Size{7, 3}, Size{33, 100}, Size{300, 1600}, Size{517, 3200},
                        Size{3, 5000}, Size{1000, 64}}) {
    SCOPED_TRACE(testing::Message() << sz.rows << " x " << sz.dim);
    const int64_t rows = sz.rows, dim = sz.dim, ld = dim + 3;  // strided rows
    const double eps = 1e-6;
    const auto x = random_vector(rows * ld, 1 + dim, 2.0), dy = random_vector(rows * ld, 2 + dim);
    auto w = random_vector(dim, 3 + dim, 0.5);
    for (double& v : w) v += 1.0;
    const auto dx_start = random_vector(rows * ld, 4 + dim);  // accumulate_dx adds onto this
    const auto dw_start = random_vector(dim, 5 + dim);

    // Reference in double.
    std::vector<double> y(rows * ld, 0.0), rstd(rows), dx = dx_start, dw = dw_start;
    cpu::rmsnorm_forward(y.data(), ld, rstd.data(), x.data(), ld, w.data(), rows, dim, eps);
    cpu::rmsnorm_backward(dx.data(), ld, dw.data(), dy.data(), ld, x.data(), ld, w.data(), rstd.data(),
                          rows, dim, /*accumulate_dx=*/true);

    // The GPU in fp32. Outputs start poisoned (NaN) where the kernel must write.
    DeviceFloats gx(cast_vector<float>(x)), gw(cast_vector<float>(w)), gdy(cast_vector<float>(dy));
    DeviceFloats gy(std::vector<float>(rows * ld, std::nanf(""))), grstd(std::vector<float>(rows, std::nanf("")));
    DeviceFloats gdx(cast_vector<float>(dx_start)), gdw(cast_vector<float>(dw_start));
    DeviceFloats work(std::vector<float>(cuda::rmsnorm_backward_workspace(rows, dim), std::nanf("")));
    cuda::rmsnorm_forward(gy.get(), ld, grstd.get(), gx.get(), ld, gw.get(), rows, dim, eps, nullptr);
    cuda::rmsnorm_backward(gdx.get(), ld, gdw.get(), gdy.get(), ld, gx.get(), ld, gw.get(), grstd.get(),
                           rows, dim, /*accumulate_dx=*/true, work.get(), nullptr);

    EXPECT_LT(relative_error(gy.to_host(), y, rows, dim, ld), 1e-5);
    EXPECT_LT(relative_error(grstd.to_host(), rstd, rows, 1, 1), 1e-5);
    EXPECT_LT(relative_error(gdx.to_host(), dx, rows, dim, ld), 1e-5);
    EXPECT_LT(relative_error(gdw.to_host(), dw, 1, dim, dim), 1e-5);

    // Same inputs, same bits: the dw reduction order is fixed.
    DeviceFloats gdw2(cast_vector<float>(dw_start)), gdx2(cast_vector<float>(dx_start));
    cuda::rmsnorm_backward(gdx2.get(), ld, gdw2.get(), gdy.get(), ld, gx.get(), ld, gw.get(), grstd.get(),
                           rows, dim, true, work.get(), nullptr);
    EXPECT_EQ(gdw2.to_host(), gdw.to_host());
  }
#endif
}

}  // namespace
}  // namespace hymba::test
