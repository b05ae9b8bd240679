// Scaffolding for `gpu`-labelled tests: they skip (GTEST_SKIP) where the CUDA backend is not built
// or no GPU is present, and hold device memory in RAII buffers filled from host vectors.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "core/device.h"

#ifdef HYMBA_HAVE_CUDA
#include "core/cuda_check.h"
#include "cuda/device_array.h"
#endif

#define HYMBA_REQUIRE_GPU()                                            \
  do {                                                                 \
    if (::hymba::cuda_device_count() == 0) GTEST_SKIP() << "no GPU";   \
  } while (0)

#ifdef HYMBA_HAVE_CUDA
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

namespace hymba::test {

using cuda::DeviceArray;  // DeviceArray<T>(host vector), .data(), .to_host()
using DeviceFloats = DeviceArray<float>;
using bf16 = __nv_bfloat16;

// Host-side conversions for bf16 tests.
inline double bf16_round(double v) { return double(__bfloat162float(__float2bfloat16_rn(float(v)))); }
inline std::vector<double> bf16_round(const std::vector<double>& v) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = bf16_round(v[i]);
  return r;
}
inline std::vector<bf16> to_bf16(const std::vector<double>& v) {
  std::vector<bf16> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = __float2bfloat16_rn(float(v[i]));
  return r;
}
inline std::vector<double> to_double(const std::vector<bf16>& v) {
  std::vector<double> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = double(__bfloat162float(v[i]));
  return r;
}
inline std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Host values in a kernel's activation type T (float or bf16).
template <class T>
std::vector<T> as(const std::vector<double>& v) {
  if constexpr (std::is_same_v<T, float>) {
    return std::vector<float>(v.begin(), v.end());
  } else {
    return to_bf16(v);
  }
}

// A NaN of type T: what written outputs start as, so a missed element shows.
template <class T>
T nan_of() {
  if constexpr (std::is_same_v<T, float>) {
    return std::nanf("");
  } else {
    return __float2bfloat16_rn(std::nanf(""));
  }
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// max |a − b| / max |b| over all elements.
inline double max_relative_error(const std::vector<double>& a, const std::vector<double>& b) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    ref = std::max(ref, std::abs(b[i]));
  }
  return diff / std::max(ref, 1e-30);
}

// How a bf16 kernel stores an output: in bf16 (activations and their gradients) or in fp32
// (statistics, parameter gradients).
enum class Stored { bf16, fp32 };

// The bf16 tolerance rule (DESIGN.md §4): a bf16 kernel's error against the float64 reference
// `exact` (computed on the unrounded inputs) may be at most about twice the error of a naive bf16
// implementation, `naive`: the float64 reference run on bf16-rounded inputs, with its output
// rounded to bf16 where the kernel stores bf16. (Rounding an fp32 output too could land a single
// value on the exact one by chance and demand less error than the rounded inputs allow.) The
// floor `1e-3` keeps an output that happens to round exactly from demanding zero error.
inline void expect_within_bf16_rule(const std::vector<double>& gpu, const std::vector<double>& exact,
                                    const std::vector<double>& naive, const char* what,
                                    Stored stored = Stored::bf16) {
  ASSERT_EQ(gpu.size(), exact.size()) << what;
  const double naive_err =
      max_relative_error(stored == Stored::bf16 ? bf16_round(naive) : naive, exact);
  const double gpu_err = max_relative_error(gpu, exact);
  EXPECT_LE(gpu_err, 2.0 * std::max(naive_err, 1e-3))
      << what << ": bf16 error " << gpu_err << " against a naive bf16 error of " << naive_err;
}

}  // namespace hymba::test
#endif
