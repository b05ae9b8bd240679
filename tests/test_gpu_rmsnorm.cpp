// The CUDA RMSNorm against the CPU reference (computed in double), float and bf16, on random
// inputs of awkward sizes: fp32 must agree to a relative 1e-5, bf16 within the bf16 rule. The
// cases cover both of the kernels' paths (16-byte packs, and one element per access for shapes
// that do not allow packs, such as the model's B norm: a 16-wide slice at column 100 of rows of
// stride 132), rows held by one to eight warps, persistent backward blocks that visit several row
// tiles, column slices whose gaps must stay untouched, and dx written or accumulated. Skipped
// without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
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

constexpr double kEps = 1e-6;

// Where one case's tensors live: x and dx are columns [col, col + dim) of [rows, ld_in] matrices
// (the model's dt, B and C norms read slices of the x_proj output and write their gradient into
// the same slices); y and dy are columns [0, dim) of [rows, ld_out].
struct NormShape {
  int64_t rows, dim, ld_in, col, ld_out;
};

// Whether the launcher takes the 16-byte path for T (its rule, rmsnorm.h): dim, both strides and
// the slice offset in whole 16-byte packs (the buffers themselves come from cudaMalloc, aligned).
template <class T>
bool packed_path(const NormShape& s) {
  const int64_t v = 16 / int64_t(sizeof(T));
  return s.dim % v == 0 && s.ld_in % v == 0 && s.ld_out % v == 0 && s.col % v == 0;
}

// Inputs of one case: compact values, and the wide matrices the kernels see.
struct NormCase {
  NormShape s;
  bool accumulate_dx;
  std::vector<double> x, dy, w, dx_start, dw_start;  // [rows, dim] ×2, [dim], [rows, dim], [dim]
  std::vector<double> x_wide, dx_start_wide;         // [rows, ld_in]: kGap around the slice
  std::vector<double> dy_wide;                       // [rows, ld_out]

  NormCase(const NormShape& shape, bool acc) : s(shape), accumulate_dx(acc) {
    const int64_t n = s.rows * s.dim;
    const uint64_t seed = uint64_t(7 * s.dim + s.rows);
    x = random_vector(n, 1 + seed, 2.0);
    dy = random_vector(n, 2 + seed);
    w = random_vector(s.dim, 3 + seed, 0.5);
    for (double& v : w) v += 1.0;
    dx_start = random_vector(n, 4 + seed);  // accumulate_dx adds onto this
    dw_start = random_vector(s.dim, 5 + seed);  // dw always accumulates
    x_wide = embed(x, s.rows, s.dim, s.ld_in, s.col);
    dy_wide = embed(dy, s.rows, s.dim, s.ld_out, 0);
    // The gap columns of dx hold random values too: they must come back bit for bit.
    dx_start_wide = random_vector(s.rows * s.ld_in, 6 + seed);
    for (int64_t r = 0; r < s.rows; ++r)
      for (int64_t c = 0; c < s.dim; ++c) dx_start_wide[r * s.ld_in + s.col + c] = dx_start[r * s.dim + c];
  }
};

struct NormOut {
  std::vector<double> y, rstd, dx, dw;  // [rows, dim] compact, [rows], [rows, dim] compact, [dim]
};

// The CPU reference in double on compact rows.
NormOut norm_reference(const NormCase& c, const std::vector<double>& x, const std::vector<double>& dy,
                       const std::vector<double>& dx_start) {
  const int64_t rows = c.s.rows, dim = c.s.dim;
  NormOut r;
  r.y.assign(rows * dim, 0.0);
  r.rstd.assign(rows, 0.0);
  r.dx = dx_start;
  r.dw = c.dw_start;
  cpu::rmsnorm_forward(r.y.data(), dim, r.rstd.data(), x.data(), dim, c.w.data(), rows, dim, kEps);
  cpu::rmsnorm_backward(r.dx.data(), dim, r.dw.data(), dy.data(), dim, x.data(), dim, c.w.data(),
                        r.rstd.data(), rows, dim, c.accumulate_dx);
  return r;
}

// The kernels on the device. y starts as NaN; dx at its start values when it accumulates, else
// NaN (its gap columns keep their random start either way); dw at its start values.
template <class T>
struct GpuNorm {
  const NormCase& c;
  std::vector<T> dx_before;  // [rows, ld_in]: what dx held before the backward
  DeviceArray<T> x, dy, y, dx;
  DeviceFloats w, rstd, dw, work;

  static std::vector<T> initial_dx(const NormCase& c) {
    std::vector<T> d = as<T>(c.dx_start_wide);
    if (!c.accumulate_dx) {
      for (int64_t r = 0; r < c.s.rows; ++r)
        for (int64_t k = 0; k < c.s.dim; ++k) d[r * c.s.ld_in + c.s.col + k] = nan_of<T>();
    }
    return d;
  }

  explicit GpuNorm(const NormCase& cc)
      : c(cc), dx_before(initial_dx(cc)), x(as<T>(cc.x_wide)), dy(as<T>(cc.dy_wide)),
        y(std::vector<T>(cc.s.rows * cc.s.ld_out, nan_of<T>())), dx(dx_before), w(cast_vector<float>(cc.w)),
        rstd(std::vector<float>(cc.s.rows, std::nanf(""))), dw(cast_vector<float>(cc.dw_start)),
        work(std::vector<float>(cuda::rmsnorm_backward_workspace(cc.s.rows, cc.s.dim), std::nanf(""))) {}

  void forward() {
    const NormShape& s = c.s;
    cuda::rmsnorm_forward<T>(y.data(), s.ld_out, rstd.data(), x.data() + s.col, s.ld_in, w.data(), s.rows, s.dim,
                             kEps, nullptr);
  }
  // On the rstd of this object's forward.
  void backward() {
    const NormShape& s = c.s;
    cuda::rmsnorm_backward<T>(dx.data() + s.col, s.ld_in, dw.data(), dy.data(), s.ld_out, x.data() + s.col, s.ld_in,
                              w.data(), rstd.data(), s.rows, s.dim, c.accumulate_dx, work.data(), nullptr);
  }
};

template <class T>
void check_rmsnorm(const NormShape& s, bool accumulate_dx) {
  SCOPED_TRACE(testing::Message() << (std::is_same_v<T, float> ? "float " : "bf16 ") << s.rows << " x " << s.dim
                                  << " (x, dx at column " << s.col << " of " << s.ld_in << ", y, dy at stride "
                                  << s.ld_out << ", " << (packed_path<T>(s) ? "16-byte path" : "element path")
                                  << (accumulate_dx ? "), dx +=" : "), dx ="));
  const NormCase c(s, accumulate_dx);
  const NormOut exact = norm_reference(c, c.x, c.dy, c.dx_start);

  GpuNorm<T> g(c);
  g.forward();
  g.backward();
  const std::vector<T> y_bits = g.y.to_host(), dx_bits = g.dx.to_host();
  const std::vector<float> rstd_bits = g.rstd.to_host(), dw_bits = g.dw.to_host();
  // Outside the slices: y stays NaN, dx keeps its start bits.
  for (int64_t r = 0; r < s.rows; ++r) {
    for (int64_t col = s.dim; col < s.ld_out; ++col) {
      ASSERT_TRUE(std::isnan(value_of(y_bits[r * s.ld_out + col]))) << "y gap written: row " << r << ", column " << col;
    }
    for (int64_t col = 0; col < s.ld_in; ++col) {
      if (col >= s.col && col < s.col + s.dim) continue;
      const int64_t i = r * s.ld_in + col;
      ASSERT_EQ(std::memcmp(&dx_bits[i], &g.dx_before[i], sizeof(T)), 0) << "dx gap written: row " << r << ", column "
                                                                          << col;
    }
  }
  NormOut gpu;
  gpu.y = extract(to_double(y_bits), s.rows, s.dim, s.ld_out, 0);
  gpu.rstd = to_double(rstd_bits);
  gpu.dx = extract(to_double(dx_bits), s.rows, s.dim, s.ld_in, s.col);
  gpu.dw = to_double(dw_bits);

  if constexpr (std::is_same_v<T, float>) {
    EXPECT_LT(max_relative_error(gpu.y, exact.y), 1e-5) << "y";
    EXPECT_LT(max_relative_error(gpu.rstd, exact.rstd), 1e-5) << "rstd";
    EXPECT_LT(max_relative_error(gpu.dx, exact.dx), 1e-5) << "dx";
    EXPECT_LT(max_relative_error(gpu.dw, exact.dw), 1e-5) << "dw";
  } else {
    const NormOut naive = norm_reference(c, bf16_round(c.x), bf16_round(c.dy), bf16_round(c.dx_start));
    expect_within_bf16_rule(gpu.y, exact.y, naive.y, "y");
    expect_within_bf16_rule(gpu.rstd, exact.rstd, naive.rstd, "rstd", Stored::fp32);
    expect_within_bf16_rule(gpu.dx, exact.dx, naive.dx, "dx");
    expect_within_bf16_rule(gpu.dw, exact.dw, naive.dw, "dw", Stored::fp32);
  }

  // Same inputs, same bits: every sum has a fixed order.
  GpuNorm<T> g2(c);
  g2.forward();
  g2.backward();
  EXPECT_TRUE(same_bits(g2.y.to_host(), y_bits)) << "y is not deterministic";
  EXPECT_TRUE(same_bits(g2.rstd.to_host(), rstd_bits)) << "rstd is not deterministic";
  EXPECT_TRUE(same_bits(g2.dx.to_host(), dx_bits)) << "dx is not deterministic";
  EXPECT_TRUE(same_bits(g2.dw.to_host(), dw_bits)) << "dw is not deterministic";
}

// {rows, dim, ld_in, col, ld_out}. Which path each takes (16-byte packs of 8 bf16 / 4 floats, or
// one element) is noted as bf16 / fp32; the layouts are those of rmsnorm.cu (threads per row tpr,
// packs per thread P; forward aims at 8 packs a thread, backward at 4).
const NormShape kShapes[] = {
    {1, 1, 4, 3, 1},                // element / element: dim 1, one row, at the last column
    {7, 7, 10, 0, 7},               // element / element
    {1, 16, 16, 0, 16},             // packed / packed, one row
    {33, 16, 16, 0, 16},            // packed / packed: a thread per row, 256 rows a block
    {1000, 16, 132, 100, 16},       // the B norm: element / packed (column 100: 200 B, 400 B)
    {1000, 16, 132, 116, 16},       // the C norm: element / packed
    {999, 100, 132, 0, 100},        // the dt norm, R = 100: element / packed
    {65, 33, 33, 0, 35},            // element / element
    {20000, 100, 133, 0, 100},      // element / element; backward blocks visit several tiles
    {1000, 64, 64, 0, 64},          // packed / packed
    {7, 1600, 1600, 0, 1600},       // packed / packed: the residual width
    {300, 1600, 1603, 0, 1600},     // element / element (odd stride)
    {2500, 1600, 1600, 0, 1600},    // packed / packed; backward blocks visit 2-5 tiles
    {1, 3200, 3200, 0, 3200},       // packed / packed: the fusion width, one row
    {1100, 3200, 3208, 8, 3200},    // packed / packed (slice at column 8); 2-5 tiles
    {517, 3200, 3203, 0, 3208},     // element / element: 256 threads × 16 elements
    {3, 5000, 5000, 0, 5000},       // packed / packed: P = 8 forward
    {3, 5000, 5003, 0, 5000},       // element / element: P = 32
    {2, 8192, 8192, 0, 8192},       // packed / packed: the widest supported row
    {2, 8192, 8193, 1, 8192},       // element / element: the widest, every thread full
};

template <class T>
void check_all_shapes() {
  int packed = 0, element = 0;
  for (const NormShape& s : kShapes) {
    (packed_path<T>(s) ? packed : element) += 1;
    check_rmsnorm<T>(s, /*accumulate_dx=*/true);
    // dx written: not at dim 1, where dx = rstd·w·dy·eps/(x² + eps) is all cancellation, so its
    // fp32 relative error says nothing about the kernel.
    if (s.dim > 1) check_rmsnorm<T>(s, /*accumulate_dx=*/false);
  }
  EXPECT_GE(packed, 5) << "the cases must exercise the 16-byte path";
  EXPECT_GE(element, 5) << "the cases must exercise the one-element path";
}

#endif  // HYMBA_HAVE_CUDA

TEST(GpuRmsNorm, ForwardAndBackwardMatchTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_all_shapes<float>();
#endif
}

TEST(GpuRmsNorm, Bf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_all_shapes<bf16>();
#endif
}

// The model sizes one workspace for its widest call and uses it for the narrower ones.
TEST(GpuRmsNorm, WorkspaceNeverShrinksAsRowsOrDimGrow) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const int64_t rows : {1, 7, 300, 395, 396, 397, 4352, 17408, 35000}) {
    int64_t prev = 0;
    for (int64_t dim = 1; dim <= 8192; ++dim) {
      const int64_t ws = cuda::rmsnorm_backward_workspace(rows, dim);
      ASSERT_GE(ws, prev) << "rows " << rows << ", dim " << dim;
      ASSERT_GE(ws, dim) << "rows " << rows << ", dim " << dim;  // at least one partial row
      ASSERT_LE(cuda::rmsnorm_backward_workspace(rows - 1, dim), ws) << "rows " << rows << ", dim " << dim;
      prev = ws;
    }
  }
  EXPECT_EQ(cuda::rmsnorm_backward_workspace(0, 1600), 0);
#endif
}

TEST(GpuRmsNorm, EmptyIsANoOpAndTooWideFails) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  const std::vector<float> dw_start = {1.5f, -2.0f, 0.25f};
  DeviceFloats dw(dw_start);
  // No rows: nothing read or written (null pointers would fault), dw keeps its values.
  cuda::rmsnorm_forward<float>(nullptr, 3, nullptr, nullptr, 3, nullptr, 0, 3, kEps, nullptr);
  cuda::rmsnorm_backward<float>(nullptr, 3, dw.data(), nullptr, 3, nullptr, 3, nullptr, nullptr, 0, 3, true, nullptr,
                                nullptr);
  cuda::rmsnorm_backward<bf16>(nullptr, 3, dw.data(), nullptr, 3, nullptr, 3, nullptr, nullptr, 0, 3, false, nullptr,
                               nullptr);
  EXPECT_TRUE(same_bits(dw.to_host(), dw_start));
  EXPECT_THROW(cuda::rmsnorm_forward<float>(nullptr, 8193, nullptr, nullptr, 8193, nullptr, 1, 8193, kEps, nullptr),
               Error);
  EXPECT_THROW(cuda::rmsnorm_backward<bf16>(nullptr, 8193, nullptr, nullptr, 8193, nullptr, 8193, nullptr, nullptr, 1,
                                            8193, false, nullptr, nullptr),
               Error);
#endif
}

}  // namespace
}  // namespace hymba::test
