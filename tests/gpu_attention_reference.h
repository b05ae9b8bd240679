// The double-precision attention reference both GPU attention tests compare against (the simple
// kernels in test_gpu_attention.cpp, the flash kernels in test_gpu_flash_attention.cpp), with the
// helpers they share: v as a NaN-padded column slice, and checks for NaN before max-error
// comparisons. CUDA builds only (it rounds to bf16 through gpu_test.h).
#pragma once

#ifdef HYMBA_HAVE_CUDA

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cpu/attention.h"
#include "gpu_test.h"

namespace hymba::test {

using cpu::AttentionShape;

// v [B·S, nkv·vd] as the columns [pad, pad + nkv·vd) of a [B·S, nkv·vd + pad] matrix whose other
// columns are NaN: a read outside the slice poisons the result.
inline std::vector<double> wide_v(const std::vector<double>& v, const AttentionShape& s, int64_t pad) {
  const int64_t width = s.nkv * s.vd, ld = width + pad;
  std::vector<double> wide(s.B * s.S * ld, std::numeric_limits<double>::quiet_NaN());
  for (int64_t t = 0; t < s.B * s.S; ++t) {
    for (int64_t c = 0; c < width; ++c) wide[t * ld + pad + c] = v[t * width + c];
  }
  return wide;
}

inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}

inline std::vector<double> plus(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> r(a.size());
  for (size_t i = 0; i < a.size(); ++i) r[i] = a[i] + b[i];
  return r;
}

// The comparisons take max over |differences|, which a NaN would slip through: check it first.
inline void expect_finite(const std::vector<double>& v, const char* what) {
  const auto bad = std::count_if(v.begin(), v.end(), [](double x) { return !std::isfinite(x); });
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << v.size() << " elements are not finite";
}

// The double reference. dk and dv are the gradients alone (accumulated from zero).
struct Reference {
  std::vector<double> out, lse;  // [B, S, nh, vd], [B, nh, S]
  std::vector<double> dq;        // [B, S, nh, hd]
  std::vector<double> dk, dv;    // [B, S, nkv, hd], [B, S, nkv, vd]
};

// With round_out the backward reads out rounded to bf16, as a naive bf16 implementation stores it.
inline Reference reference(const AttentionShape& s, const std::vector<double>& q, const std::vector<double>& k,
                    const std::vector<double>& v, const std::vector<double>& dout, bool round_out) {
  Reference r;
  r.out.assign(s.B * s.S * s.nh * s.vd, 0.0);
  r.lse.assign(s.B * s.nh * s.S, 0.0);
  r.dq.assign(s.B * s.S * s.nh * s.hd, 0.0);
  r.dk.assign(s.B * s.S * s.nkv * s.hd, 0.0);
  r.dv.assign(s.B * s.S * s.nkv * s.vd, 0.0);
  const int64_t ldv = s.nkv * s.vd;
  cpu::attention_forward(r.out.data(), r.lse.data(), q.data(), k.data(), v.data(), ldv, s);
  const std::vector<double> out = round_out ? bf16_round(r.out) : r.out;
  cpu::attention_backward(r.dq.data(), r.dk.data(), r.dv.data(), dout.data(), q.data(), k.data(),
                          v.data(), ldv, out.data(), r.lse.data(), s);
  return r;
}

}  // namespace hymba::test

#endif
