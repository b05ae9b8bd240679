// The CUDA RMSNorm against the CPU reference (computed in double), float and bf16, on random
// inputs of awkward sizes: fp32 must agree to a relative 1e-5, bf16 within the bf16 rule. The
// cases cover both of the kernels' paths (16-byte packs, and one element per access for shapes
// that do not allow packs, such as the model's B norm: a 16-wide slice at column 100 of rows of
// stride 132), rows held by one to eight warps, persistent backward blocks that visit several row
// tiles, column slices whose gaps must stay untouched, and dx written or accumulated. The split
// norm of tensor parallelism runs on the same cases over 1, 2 and 3 simulated ranks (chunks of
// ceil(dim / ranks): short and empty last chunks, parts at unaligned columns), each half checked
// against its CPU reference and the result against the unsplit norm. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
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

// The outputs of a GPU run, compact (out), after checking it kept to its slices: y stays NaN
// outside them and dx keeps its start bits. rstd_bits: the run's rstd.
template <class T>
void read_back(const GpuNorm<T>& g, const std::vector<float>& rstd_bits, NormOut& out) {
  const NormShape& s = g.c.s;
  const std::vector<T> y_bits = g.y.to_host(), dx_bits = g.dx.to_host();
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
  out.y = extract(to_double(y_bits), s.rows, s.dim, s.ld_out, 0);
  out.rstd = to_double(rstd_bits);
  out.dx = extract(to_double(dx_bits), s.rows, s.dim, s.ld_in, s.col);
  out.dw = to_double(g.dw.to_host());
}

// A GPU run against the double reference `exact` of its case: fp32 to a relative 1e-5, bf16
// within the bf16 rule.
template <class T>
void expect_near_reference(const NormOut& gpu, const NormCase& c, const NormOut& exact) {
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
}

template <class T>
std::string describe(const NormShape& s, bool accumulate_dx) {
  return (testing::Message() << (std::is_same_v<T, float> ? "float " : "bf16 ") << s.rows << " x " << s.dim
                             << " (x, dx at column " << s.col << " of " << s.ld_in << ", y, dy at stride " << s.ld_out
                             << ", " << (packed_path<T>(s) ? "16-byte path" : "element path")
                             << (accumulate_dx ? "), dx +=" : "), dx ="))
      .GetString();
}

template <class T>
void check_rmsnorm(const NormShape& s, bool accumulate_dx) {
  SCOPED_TRACE(describe<T>(s, accumulate_dx));
  const NormCase c(s, accumulate_dx);
  const NormOut exact = norm_reference(c, c.x, c.dy, c.dx_start);

  GpuNorm<T> g(c);
  g.forward();
  g.backward();
  const std::vector<T> y_bits = g.y.to_host(), dx_bits = g.dx.to_host();
  const std::vector<float> rstd_bits = g.rstd.to_host(), dw_bits = g.dw.to_host();
  NormOut gpu;
  ASSERT_NO_FATAL_FAILURE(read_back(g, rstd_bits, gpu));
  expect_near_reference<T>(gpu, c, exact);

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

// ---- the split norm of tensor parallelism, ranks simulated in one process -------------------

// Columns [begin, end) of each row held by rank q of `ranks`: chunks of ceil(dim / ranks), so the
// last is short, or empty when dim is small.
struct Chunk {
  int64_t begin, end;
};
Chunk chunk_of(int64_t dim, int64_t ranks, int64_t q) {
  const int64_t c = (dim + ranks - 1) / ranks;
  return {std::min(dim, q * c), std::min(dim, (q + 1) * c)};
}

// What an all-reduce of per-row sums does: every rank's buffer [rows] ends up holding the sum over
// the ranks (added here on the host, in rank order, in float).
void all_reduce_rows(std::vector<DeviceFloats>& per_rank) {
  std::vector<float> total = per_rank[0].to_host();  // [rows]
  for (size_t q = 1; q < per_rank.size(); ++q) {
    const std::vector<float> part = per_rank[q].to_host();
    for (size_t r = 0; r < total.size(); ++r) total[r] += part[r];
  }
  for (DeviceFloats& buffer : per_rank) buffer.upload(total.data());
}

// A rank's statistics [rows] against the CPU split function in double on the values the kernel
// saw (x, dy in T, w in float, the GPU's rstd): fp32 sums, so within 1e-5 of the largest row's
// Σ |term| (`magnitude`; a dot may cancel to near zero) for both T.
void expect_rank_statistic(const std::vector<float>& gpu, const std::vector<double>& ref,
                           const std::vector<double>& magnitude, const char* what, int64_t q) {
  double err = 0, scale = 1e-30;
  for (size_t r = 0; r < ref.size(); ++r) {
    err = std::max(err, std::abs(double(gpu[r]) - ref[r]));
    scale = std::max(scale, magnitude[r]);
  }
  EXPECT_LE(err, 1e-5 * scale) << what << " of rank " << q;
}

std::vector<double> absolute(const std::vector<double>& v) {
  std::vector<double> a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::abs(v[i]);
  return a;
}

// The split norm over `ranks` simulated ranks on the buffers of a GpuNorm: rank q runs the four
// halves on its columns (x, dx, y, dy, w and dw at chunk_of(q)), with the all-reduces between
// them done by all_reduce_rows, and its rstd written over its summed sums (they may alias).
// Checks each rank's sums and dots against the CPU split functions; returns the rstd of rank 0
// after checking every rank holds the same bits.
template <class T>
std::vector<float> run_split_norm(GpuNorm<T>& g, int64_t ranks) {
  const NormCase& c = g.c;
  const NormShape& s = c.s;
  const std::vector<double> x_seen = to_double(as<T>(c.x)), dy_seen = to_double(as<T>(c.dy));  // [rows, dim]
  const std::vector<double> w_seen = to_double(cast_vector<float>(c.w));                         // [dim]
  const std::vector<double> x_abs = absolute(x_seen), dy_abs = absolute(dy_seen), w_abs = absolute(w_seen);
  std::vector<DeviceFloats> stat, dots;  // per rank [rows]: sums (then rstd over them), dots
  for (int64_t q = 0; q < ranks; ++q) {
    stat.emplace_back(std::vector<float>(s.rows, std::nanf("")));
    dots.emplace_back(std::vector<float>(s.rows, std::nanf("")));
  }
  // Rank q's part of each tensor.
  const auto x_of = [&](const Chunk& k) { return g.x.data() + s.col + k.begin; };
  const auto dx_of = [&](const Chunk& k) { return g.dx.data() + s.col + k.begin; };

  for (int64_t q = 0; q < ranks; ++q) {
    const Chunk k = chunk_of(s.dim, ranks, q);
    cuda::rmsnorm_sum_squares<T>(stat[q].data(), x_of(k), s.ld_in, s.rows, k.end - k.begin, nullptr);
    std::vector<double> ref(s.rows);  // [rows]
    cpu::rmsnorm_sum_squares(ref.data(), x_seen.data() + k.begin, s.dim, s.rows, k.end - k.begin);
    expect_rank_statistic(stat[q].to_host(), ref, ref, "sums", q);
  }
  all_reduce_rows(stat);
  for (int64_t q = 0; q < ranks; ++q) {
    const Chunk k = chunk_of(s.dim, ranks, q);
    cuda::rmsnorm_forward_from_sums<T>(g.y.data() + k.begin, s.ld_out, stat[q].data(), x_of(k), s.ld_in,
                                       g.w.data() + k.begin, stat[q].data(), s.rows, k.end - k.begin, s.dim, kEps,
                                       nullptr);
  }
  const std::vector<float> rstd = stat[0].to_host();  // [rows]
  for (int64_t q = 1; q < ranks; ++q) EXPECT_TRUE(same_bits(stat[q].to_host(), rstd)) << "rstd of rank " << q;
  const std::vector<double> rstd_seen = to_double(rstd);

  for (int64_t q = 0; q < ranks; ++q) {
    const Chunk k = chunk_of(s.dim, ranks, q);
    cuda::rmsnorm_backward_dots<T>(dots[q].data(), g.dy.data() + k.begin, s.ld_out, x_of(k), s.ld_in,
                                   g.w.data() + k.begin, stat[q].data(), s.rows, k.end - k.begin, nullptr);
    std::vector<double> ref(s.rows), magnitude(s.rows);  // [rows]
    cpu::rmsnorm_backward_dots(ref.data(), dy_seen.data() + k.begin, s.dim, x_seen.data() + k.begin, s.dim,
                               w_seen.data() + k.begin, rstd_seen.data(), s.rows, k.end - k.begin);
    cpu::rmsnorm_backward_dots(magnitude.data(), dy_abs.data() + k.begin, s.dim, x_abs.data() + k.begin, s.dim,
                               w_abs.data() + k.begin, rstd_seen.data(), s.rows, k.end - k.begin);
    expect_rank_statistic(dots[q].to_host(), ref, magnitude, "dots", q);
  }
  all_reduce_rows(dots);
  for (int64_t q = 0; q < ranks; ++q) {
    const Chunk k = chunk_of(s.dim, ranks, q);
    cuda::rmsnorm_backward_from_dots<T>(dx_of(k), s.ld_in, g.dw.data() + k.begin, g.dy.data() + k.begin, s.ld_out,
                                        x_of(k), s.ld_in, g.w.data() + k.begin, stat[q].data(), dots[q].data(),
                                        s.rows, k.end - k.begin, s.dim, c.accumulate_dx, g.work.data(), nullptr);
  }
  return rstd;
}

// Whether the halves take the whole norm's path (rmsnorm.h): the sums half decides on x alone,
// the others on what the whole norm sees but dx, which sits where x does. True for every case
// of kShapes.
template <class T>
bool halves_take_the_whole_path(const NormShape& s) {
  const int64_t v = 16 / int64_t(sizeof(T));
  const bool x_packs = s.dim % v == 0 && s.ld_in % v == 0 && s.col % v == 0;
  return x_packs == packed_path<T>(s);
}

// The split norm over 1, 2 and 3 ranks against the unsplit CPU reference (the same tolerances as
// the whole norm); with one rank, against the whole GPU norm bit for bit.
template <class T>
void check_split_norm(const NormShape& s, bool accumulate_dx) {
  SCOPED_TRACE(describe<T>(s, accumulate_dx));
  const NormCase c(s, accumulate_dx);
  const NormOut exact = norm_reference(c, c.x, c.dy, c.dx_start);

  GpuNorm<T> whole(c);
  whole.forward();
  whole.backward();
  for (const int64_t ranks : {1, 2, 3}) {
    SCOPED_TRACE(testing::Message() << ranks << " ranks");
    GpuNorm<T> g(c);
    const std::vector<float> rstd_bits = run_split_norm(g, ranks);
    NormOut gpu;
    ASSERT_NO_FATAL_FAILURE(read_back(g, rstd_bits, gpu));
    expect_near_reference<T>(gpu, c, exact);
    if (ranks == 1 && halves_take_the_whole_path<T>(s)) {
      // The halves are the whole kernels cut at the row sum: the same values added in the same
      // order, so the same bits.
      EXPECT_TRUE(same_bits(g.y.to_host(), whole.y.to_host())) << "y differs from the whole norm's";
      EXPECT_TRUE(same_bits(rstd_bits, whole.rstd.to_host())) << "rstd differs from the whole norm's";
      EXPECT_TRUE(same_bits(g.dx.to_host(), whole.dx.to_host())) << "dx differs from the whole norm's";
      EXPECT_TRUE(same_bits(g.dw.to_host(), whole.dw.to_host())) << "dw differs from the whole norm's";
    }
  }
}

template <class T>
void check_split_all_shapes() {
  for (const NormShape& s : kShapes) {
    check_split_norm<T>(s, /*accumulate_dx=*/true);
    if (s.dim > 1) check_split_norm<T>(s, /*accumulate_dx=*/false);  // as in check_all_shapes
  }
}

// The averaging forward (the fusion of two branches) against the plain one and a host average:
// y = T((float(y) + float(norm)) · 0.5) bit for bit, the gap columns of y untouched; the split
// norm's second half (with one rank) the same where it takes the whole norm's path.
template <class T>
void check_average(const NormShape& s) {
  SCOPED_TRACE(describe<T>(s, false));
  const NormCase c(s, false);
  const std::vector<T> other = as<T>(random_vector(s.rows * s.ld_out, 11 + uint64_t(s.dim), 2.0));  // [rows, ld_out]
  GpuNorm<T> plain(c);
  plain.forward();
  const std::vector<T> norm = plain.y.to_host();
  std::vector<T> want = other;
  for (int64_t r = 0; r < s.rows; ++r) {
    for (int64_t k = 0; k < s.dim; ++k) {
      const int64_t i = r * s.ld_out + k;
      const float sum = float(value_of(other[i])) + float(value_of(norm[i]));
      if constexpr (std::is_same_v<T, float>) {
        want[i] = sum * 0.5f;
      } else {
        want[i] = __float2bfloat16_rn(sum * 0.5f);
      }
    }
  }
  DeviceArray<T> y(other);
  DeviceFloats rstd(std::vector<float>(s.rows, std::nanf("")));
  cuda::rmsnorm_forward<T>(y.data(), s.ld_out, rstd.data(), plain.x.data() + s.col, s.ld_in, plain.w.data(), s.rows,
                           s.dim, kEps, nullptr, /*average=*/true);
  EXPECT_TRUE(same_bits(y.to_host(), want)) << "the averaging forward";
  EXPECT_TRUE(same_bits(rstd.to_host(), plain.rstd.to_host())) << "rstd of the averaging forward";
  if (halves_take_the_whole_path<T>(s)) {
    DeviceArray<T> ys(other);
    DeviceFloats sums(std::vector<float>(s.rows, std::nanf("")));
    cuda::rmsnorm_sum_squares<T>(sums.data(), plain.x.data() + s.col, s.ld_in, s.rows, s.dim, nullptr);
    cuda::rmsnorm_forward_from_sums<T>(ys.data(), s.ld_out, sums.data(), plain.x.data() + s.col, s.ld_in,
                                       plain.w.data(), sums.data(), s.rows, s.dim, s.dim, kEps, nullptr,
                                       /*average=*/true);
    EXPECT_TRUE(same_bits(ys.to_host(), want)) << "the averaging forward from sums";
  }
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

TEST(GpuRmsNorm, SplitOverRanksMatchesTheUnsplitNorm) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_split_all_shapes<float>();
#endif
}

TEST(GpuRmsNorm, SplitOverRanksBf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_split_all_shapes<bf16>();
#endif
}

TEST(GpuRmsNorm, AveragingForwardIsTheNormAveragedIntoY) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const NormShape& s : kShapes) {
    check_average<float>(s);
    check_average<bf16>(s);
  }
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

TEST(GpuRmsNorm, SplitHalvesWithNoRowsAreNoOpsAndCheckTheirSizes) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  const std::vector<float> dw_start = {1.5f, -2.0f, 0.25f};
  DeviceFloats dw(dw_start);
  cuda::rmsnorm_sum_squares<float>(nullptr, nullptr, 3, 0, 3, nullptr);
  cuda::rmsnorm_forward_from_sums<bf16>(nullptr, 3, nullptr, nullptr, 3, nullptr, nullptr, 0, 3, 6, kEps, nullptr);
  cuda::rmsnorm_backward_dots<float>(nullptr, nullptr, 3, nullptr, 3, nullptr, nullptr, 0, 3, nullptr);
  cuda::rmsnorm_backward_from_dots<bf16>(nullptr, 3, dw.data(), nullptr, 3, nullptr, 3, nullptr, nullptr, nullptr, 0,
                                         3, 6, true, nullptr, nullptr);
  EXPECT_TRUE(same_bits(dw.to_host(), dw_start));
  // full_dim below dim (or 0) cannot be the whole row.
  EXPECT_THROW(cuda::rmsnorm_forward_from_sums<float>(nullptr, 4, nullptr, nullptr, 4, nullptr, nullptr, 1, 4, 3, kEps,
                                                      nullptr),
               Error);
  EXPECT_THROW(cuda::rmsnorm_backward_from_dots<float>(nullptr, 4, nullptr, nullptr, 4, nullptr, 4, nullptr, nullptr,
                                                       nullptr, 1, 0, 0, false, nullptr, nullptr),
               Error);
  EXPECT_THROW(cuda::rmsnorm_sum_squares<bf16>(nullptr, nullptr, 8193, 1, 8193, nullptr), Error);
  EXPECT_THROW(cuda::rmsnorm_backward_dots<bf16>(nullptr, nullptr, 8193, nullptr, 8193, nullptr, nullptr, 1, 8193,
                                                 nullptr),
               Error);
#endif
}

}  // namespace
}  // namespace hymba::test
