// Test helpers for ops that read or write a column slice of a wider matrix (the fused in_proj
// output): put a compact [rows, width] block into a [rows, ld] matrix whose other columns hold
// kGap, take it out again, and check the kernel left the gaps alone.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace hymba::test {

inline constexpr double kGap = -777.0;

// Columns [col, col + width) of a [rows, ld] matrix filled with kGap elsewhere.
inline std::vector<double> embed(const std::vector<double>& a, int64_t rows, int64_t width,
                                 int64_t ld, int64_t col) {
  std::vector<double> wide(rows * ld, kGap);  // [rows, ld]
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < width; ++c) wide[r * ld + col + c] = a[r * width + c];
  return wide;
}

inline std::vector<double> extract(const std::vector<double>& wide, int64_t rows, int64_t width,
                                   int64_t ld, int64_t col) {
  std::vector<double> a(rows * width);  // [rows, width]
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < width; ++c) a[r * width + c] = wide[r * ld + col + c];
  return a;
}

inline void expect_gaps_untouched(const std::vector<double>& wide, int64_t rows, int64_t width,
                                  int64_t ld, int64_t col) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < ld; ++c)
      if (c < col || c >= col + width) {
        ASSERT_EQ(wide[r * ld + c], kGap) << "row " << r << ", column " << c;
      }
}

}  // namespace hymba::test
