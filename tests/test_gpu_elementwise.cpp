// The CUDA elementwise helpers against plain host loops: copy_rows and cast must be exact. Sizes
// leave a tail after the packs, and shifted pointers and odd strides take the narrower paths.
// Skipped without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "gpu_test.h"
#include "gradcheck.h"

#ifdef HYMBA_HAVE_CUDA
#include "cuda/elementwise.h"
#endif

namespace hymba::test {
namespace {

#ifdef HYMBA_HAVE_CUDA

// Host conversions, the same roundings the device uses (round to nearest even into bf16).
inline float host_float(float v) { return v; }
inline float host_float(bf16 v) { return __bfloat162float(v); }
template <class T>
T host_from_float(float v) {
  if constexpr (std::is_same_v<T, float>) {
    return v;
  } else {
    return __float2bfloat16_rn(v);
  }
}

template <class T>
const char* type_name() {
  return std::is_same_v<T, float> ? "float" : "bf16";
}

// ---- copy_rows ----------------------------------------------------------------------------------

struct CopyCase {
  int64_t rows, cols, lddst, ldsrc, dst_offset, src_offset;
};

template <class T>
void check_copy_rows(const CopyCase& c) {
  SCOPED_TRACE(testing::Message() << type_name<T>() << " rows " << c.rows << " cols " << c.cols << " lddst "
                                  << c.lddst << " ldsrc " << c.ldsrc << " offsets " << c.dst_offset
                                  << ", " << c.src_offset);
  const auto src = as<T>(random_vector(c.src_offset + c.rows * c.ldsrc, uint64_t(c.rows * 31 + c.cols)));
  // dst starts NaN everywhere: the copied block must match src and the rest stay NaN.
  std::vector<T> want(c.dst_offset + c.rows * c.lddst, nan_of<T>());
  DeviceArray<T> gsrc(src), gdst(want);
  for (int64_t r = 0; r < c.rows; ++r) {
    for (int64_t k = 0; k < c.cols; ++k) {
      want[c.dst_offset + r * c.lddst + k] = src[c.src_offset + r * c.ldsrc + k];
    }
  }
  cuda::copy_rows<T>(gdst.data() + c.dst_offset, c.lddst, gsrc.data() + c.src_offset, c.ldsrc, c.rows,
                     c.cols, nullptr);
  EXPECT_TRUE(same_bits(gdst.to_host(), want));
}

const CopyCase kCopyCases[] = {
    {1, 1, 1, 1, 0, 0},       {3, 5, 7, 6, 0, 0},     {17, 64, 64, 72, 0, 0},  // 16-byte words
    {5, 63, 66, 64, 0, 0},    {9, 8, 16, 8, 1, 0},    {9, 8, 16, 8, 0, 3},     // narrower words
    {4, 2, 2, 2, 0, 0},       {300, 1600, 1600, 3200, 0, 0},  // text rows out of [.., 2H]
    {2176 * 2, 64, 64, 1600, 0, 1},                           // one head's columns
};

// ---- cast ---------------------------------------------------------------------------------------

struct VecCase {
  int64_t n, offset;  // offset values before the start, to misalign the pointers
};
const VecCase kVecCases[] = {{1, 0}, {3, 0}, {8, 0}, {9, 0}, {1000, 0}, {4097, 0},
                             {7, 1}, {1001, 3}, {2176 * 1600, 0}};

template <class Dst, class Src>
void check_cast(const VecCase& c) {
  SCOPED_TRACE(testing::Message() << type_name<Src>() << " -> " << type_name<Dst>() << " n " << c.n
                                  << " offset " << c.offset);
  const int64_t size = c.offset + c.n;
  const auto src = as<Src>(random_vector(size, uint64_t(c.n + 3), 100.0));
  std::vector<Dst> want(size, nan_of<Dst>());  // NaN before the start and where a write is missed
  DeviceArray<Src> gsrc(src);
  DeviceArray<Dst> gdst(want);
  for (int64_t i = c.offset; i < size; ++i) want[i] = host_from_float<Dst>(host_float(src[i]));
  cuda::cast<Dst, Src>(gdst.data() + c.offset, gsrc.data() + c.offset, c.n, nullptr);
  EXPECT_TRUE(same_bits(gdst.to_host(), want));
}

#endif  // HYMBA_HAVE_CUDA

TEST(GpuElementwise, CopyRowsIsExact) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const CopyCase& c : kCopyCases) {
    check_copy_rows<float>(c);
    check_copy_rows<bf16>(c);
  }
#endif
}

TEST(GpuElementwise, CastIsExact) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const VecCase& c : kVecCases) {
    check_cast<bf16, float>(c);
    check_cast<float, bf16>(c);
    check_cast<float, float>(c);
  }
#endif
}

TEST(GpuElementwise, EmptySizesWriteNothing) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  DeviceFloats buf(std::vector<float>(4, 1.0f));
  cuda::copy_rows<float>(buf.data(), 2, buf.data() + 2, 2, 0, 2, nullptr);
  cuda::copy_rows<float>(buf.data(), 2, buf.data() + 2, 2, 2, 0, nullptr);
  cuda::cast<float, float>(buf.data(), buf.data(), 0, nullptr);
  EXPECT_EQ(buf.to_host(), std::vector<float>(4, 1.0f));
#endif
}

}  // namespace
}  // namespace hymba::test
