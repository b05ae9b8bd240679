// The CUDA RMSNorm against the CPU reference (computed in double), float and bf16, on random
// inputs of awkward sizes with strided rows; fp32 must agree to a relative 1e-5, bf16 within the
// bf16 rule. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "cpu/rmsnorm.h"
#include "gpu_test.h"
#include "gradcheck.h"
#include "strided.h"

#ifdef HYMBA_HAVE_CUDA
#include "cuda/rmsnorm.h"
#endif

namespace hymba::test {
namespace {

#ifdef HYMBA_HAVE_CUDA

inline double value_of(float v) { return v; }
inline double value_of(bf16 v) { return __bfloat162float(v); }

// Inputs of one case; every [rows, dim] tensor is stored at row stride ld = dim + 3.
struct NormCase {
  int64_t rows, dim, ld;
  bool accumulate_dx;
  std::vector<double> x, dy, w, dx_start, dw_start;  // [rows, ld] x2, [dim], [rows, ld], [dim]

  NormCase(int64_t r, int64_t d, bool acc) : rows(r), dim(d), ld(d + 3), accumulate_dx(acc) {
    x = random_vector(rows * ld, 1 + dim, 2.0);
    dy = random_vector(rows * ld, 2 + dim);
    w = random_vector(dim, 3 + dim, 0.5);
    for (double& v : w) v += 1.0;
    dx_start = random_vector(rows * ld, 4 + dim);  // accumulate_dx adds onto this
    dw_start = random_vector(dim, 5 + dim);        // dw always accumulates
  }
};

struct NormOut {
  std::vector<double> y, rstd, dx, dw;  // [rows, dim] compact, [rows], [rows, dim] compact, [dim]
};

// The CPU reference in double on the given x, dy and dx start.
NormOut norm_reference(const NormCase& c, const std::vector<double>& x, const std::vector<double>& dy,
                       const std::vector<double>& dx_start) {
  const double eps = 1e-6;
  std::vector<double> y(c.rows * c.ld, 0.0), dx = dx_start;
  NormOut r;
  r.rstd.assign(c.rows, 0.0);
  r.dw = c.dw_start;
  cpu::rmsnorm_forward(y.data(), c.ld, r.rstd.data(), x.data(), c.ld, c.w.data(), c.rows, c.dim, eps);
  cpu::rmsnorm_backward(dx.data(), c.ld, r.dw.data(), dy.data(), c.ld, x.data(), c.ld, c.w.data(),
                        r.rstd.data(), c.rows, c.dim, c.accumulate_dx);
  r.y = extract(y, c.rows, c.dim, c.ld, 0);
  r.dx = extract(dx, c.rows, c.dim, c.ld, 0);
  return r;
}

// The kernels on the device. y starts as NaN; dx at its start values when it accumulates, else
// NaN; dw at its start values.
template <class T>
struct GpuNorm {
  const NormCase& c;
  DeviceArray<T> x, dy, y, dx;
  DeviceFloats w, rstd, dw, work;

  explicit GpuNorm(const NormCase& cc)
      : c(cc), x(as<T>(cc.x)), dy(as<T>(cc.dy)), y(std::vector<T>(cc.rows * cc.ld, nan_of<T>())),
        dx(cc.accumulate_dx ? as<T>(cc.dx_start) : std::vector<T>(cc.rows * cc.ld, nan_of<T>())),
        w(cast_vector<float>(cc.w)), rstd(std::vector<float>(cc.rows, std::nanf(""))),
        dw(cast_vector<float>(cc.dw_start)),
        work(std::vector<float>(cuda::rmsnorm_backward_workspace(cc.rows, cc.dim), std::nanf(""))) {}

  void forward() {
    cuda::rmsnorm_forward<T>(y.data(), c.ld, rstd.data(), x.data(), c.ld, w.data(), c.rows, c.dim, 1e-6, nullptr);
  }
  // On the rstd of this object's forward.
  void backward() {
    cuda::rmsnorm_backward<T>(dx.data(), c.ld, dw.data(), dy.data(), c.ld, x.data(), c.ld, w.data(), rstd.data(),
                              c.rows, c.dim, c.accumulate_dx, work.data(), nullptr);
  }
};

template <class T>
void check_rmsnorm(int64_t rows, int64_t dim, bool accumulate_dx) {
  SCOPED_TRACE(testing::Message() << (std::is_same_v<T, float> ? "float " : "bf16 ") << rows << " x " << dim
                                  << (accumulate_dx ? ", dx +=" : ", dx ="));
  const NormCase c(rows, dim, accumulate_dx);
  const NormOut exact = norm_reference(c, c.x, c.dy, c.dx_start);

  GpuNorm<T> g(c);
  g.forward();
  g.backward();
  const std::vector<T> y_bits = g.y.to_host(), dx_bits = g.dx.to_host();
  const std::vector<float> dw_bits = g.dw.to_host();
  // The gap columns: y's stay NaN, dx's keep their start.
  const std::vector<T> dx_before = accumulate_dx ? as<T>(c.dx_start) : std::vector<T>(rows * c.ld, nan_of<T>());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t col = dim; col < c.ld; ++col) {
      const int64_t i = r * c.ld + col;
      ASSERT_TRUE(std::isnan(value_of(y_bits[i]))) << "y gap written: row " << r << ", column " << col;
      ASSERT_EQ(std::memcmp(&dx_bits[i], &dx_before[i], sizeof(T)), 0) << "dx gap written: row " << r << ", column " << col;
    }
  }
  NormOut gpu;
  gpu.y = extract(to_double(y_bits), rows, dim, c.ld, 0);
  gpu.rstd = to_double(g.rstd.to_host());
  gpu.dx = extract(to_double(dx_bits), rows, dim, c.ld, 0);
  gpu.dw = to_double(dw_bits);

  if constexpr (std::is_same_v<T, float>) {
    EXPECT_LT(max_relative_error(gpu.y, exact.y), 1e-5) << "y";
    EXPECT_LT(max_relative_error(gpu.rstd, exact.rstd), 1e-5) << "rstd";
    EXPECT_LT(max_relative_error(gpu.dx, exact.dx), 1e-5) << "dx";
    EXPECT_LT(max_relative_error(gpu.dw, exact.dw), 1e-5) << "dw";
  } else {
    const NormOut naive = norm_reference(c, bf16_round(c.x), bf16_round(c.dy), bf16_round(c.dx_start));
    expect_within_bf16_rule(gpu.y, exact.y, naive.y, "y");
    expect_within_bf16_rule(gpu.rstd, exact.rstd, naive.rstd, "rstd");
    expect_within_bf16_rule(gpu.dx, exact.dx, naive.dx, "dx");
    expect_within_bf16_rule(gpu.dw, exact.dw, naive.dw, "dw");
  }

  // Same inputs, same bits: the dw reduction order is fixed.
  GpuNorm<T> g2(c);
  g2.forward();
  g2.backward();
  EXPECT_TRUE(same_bits(g2.y.to_host(), y_bits)) << "y is not deterministic";
  EXPECT_TRUE(same_bits(g2.dx.to_host(), dx_bits)) << "dx is not deterministic";
  EXPECT_TRUE(same_bits(g2.dw.to_host(), dw_bits)) << "dw is not deterministic";
}

struct NormSize {
  int64_t rows, dim;
};
const NormSize kSizes[] = {{1, 1},      {7, 3},     {33, 100}, {300, 1600},
                           {517, 3200}, {3, 5000},  {1000, 64}};

template <class T>
void check_all_sizes() {
  for (const NormSize sz : kSizes) {
    check_rmsnorm<T>(sz.rows, sz.dim, /*accumulate_dx=*/true);
    // dx written: not at dim 1, where dx = rstd·w·dy·eps/(x² + eps) is all cancellation, so its
    // fp32 relative error says nothing about the kernel.
    if (sz.dim > 1) check_rmsnorm<T>(sz.rows, sz.dim, /*accumulate_dx=*/false);
  }
}

#endif  // HYMBA_HAVE_CUDA

TEST(GpuRmsNorm, ForwardAndBackwardMatchTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_all_sizes<float>();
#endif
}

TEST(GpuRmsNorm, Bf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_all_sizes<bf16>();
#endif
}

}  // namespace
}  // namespace hymba::test
