#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cpu/rope.h"
#include "gradcheck.h"

namespace hymba::cpu {
namespace {

using test::random_vector;

// y = rope(x) with x read as a column slice of a wider matrix (token stride heads·hd + pad, slice
// at column pad) whose other columns are NaN: a read outside the slice shows up as NaN in y.
template <class T>
std::vector<T> rope(const std::vector<double>& x, const std::vector<float>& inv_freq, int64_t B,
                    int64_t S, int64_t heads, int64_t hd, int64_t pad = 0) {
  const int64_t width = heads * hd, ldx = width + pad;
  std::vector<T> wide(static_cast<size_t>(B * S * ldx), std::numeric_limits<T>::quiet_NaN());
  for (int64_t t = 0; t < B * S; ++t) {
    for (int64_t c = 0; c < width; ++c) wide[t * ldx + pad + c] = T(x[t * width + c]);
  }
  std::vector<T> y(x.size());  // [B, S, heads, hd]
  rope_forward(y.data(), wide.data() + pad, ldx, inv_freq.data(), B, S, heads, hd);
  return y;
}

double head_dot(const double* a, const double* b, int64_t hd) {
  double s = 0;
  for (int64_t i = 0; i < hd; ++i) s += a[i] * b[i];
  return s;
}

TEST(RopeInvFreq, MatchesSpecNtkBase) {
  // HYMBA_SPEC §2.2: base' = 1e4 · 7^(64/62) = 74534.83031811893 for Hymba-1.5B.
  const std::vector<float> f = rope_inv_freq(64, 1e4, true, 8192, 2048);
  ASSERT_EQ(f.size(), 32u);
  const double spec[4] = {1.0, 0.7042693, 0.4959953, 0.3493143};  // official code's values
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(f[i], spec[i], 5e-8) << i;
  for (int i = 0; i < 32; ++i) {
    EXPECT_FLOAT_EQ(f[i], float(std::pow(74534.83031811893, -2.0 * i / 64))) << i;
  }
}

TEST(RopeInvFreq, PlainBaseWithoutNtk) {
  const std::vector<float> f = rope_inv_freq(4, 1e4, false, 8192, 2048);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0], 1.0f);
  EXPECT_FLOAT_EQ(f[1], 0.01f);  // 1e4^(−2/4)
  // The NTK factor is 1 when the context is not extended: the base is theta itself.
  EXPECT_EQ(rope_inv_freq(8, 500.0, true, 2048, 2048), rope_inv_freq(8, 500.0, false, 0, 0));
}

// The rotate-half convention written out (HYMBA_SPEC §2.2), with position = sequence index.
// Long enough for the kernel's parallel path.
TEST(Rope, MatchesRotateHalfFormula) {
  const int64_t B = 2, S = 2048, heads = 2, hd = 4, half = 2;
  const std::vector<float> inv_freq = {1.0f, 0.25f};
  const std::vector<double> x = random_vector(B * S * heads * hd, 1);  // [B, S, heads, hd]
  const std::vector<double> y = rope<double>(x, inv_freq, B, S, heads, hd, 3);
  for (int64_t t = 0; t < B * S; ++t) {
    const int64_t pos = t % S;
    for (int64_t h = 0; h < heads; ++h) {
      const double* xh = x.data() + (t * heads + h) * hd;  // [hd]
      const double* yh = y.data() + (t * heads + h) * hd;  // [hd]
      for (int64_t i = 0; i < half; ++i) {
        const double c = std::cos(pos * double(inv_freq[i])),
                     s = std::sin(pos * double(inv_freq[i]));
        EXPECT_NEAR(yh[i], xh[i] * c - xh[i + half] * s, 1e-15);
        EXPECT_NEAR(yh[i + half], xh[i + half] * c + xh[i] * s, 1e-15);
      }
    }
  }
}

TEST(Rope, PositionZeroIsIdentity) {
  const int64_t B = 2, S = 3, heads = 3, hd = 8, row = heads * hd;
  const std::vector<float> inv_freq = rope_inv_freq(hd, 1e4, true, 8192, 2048);
  const std::vector<double> x = random_vector(B * S * row, 2);  // [B, S, heads, hd]
  const std::vector<float> y = rope<float>(x, inv_freq, B, S, heads, hd);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t c = 0; c < row; ++c) {
      EXPECT_EQ(y[b * S * row + c], float(x[b * S * row + c]));              // s = 0
      EXPECT_NE(y[(b * S + 1) * row + c], float(x[(b * S + 1) * row + c]));  // s = 1 rotates
    }
  }
}

TEST(Rope, PreservesEachHeadNorm) {
  const int64_t B = 2, S = 40, heads = 3, hd = 16;
  const std::vector<float> inv_freq = rope_inv_freq(hd, 1e4, true, 8192, 2048);
  const std::vector<double> x = random_vector(B * S * heads * hd, 3);  // [B, S, heads, hd]
  const std::vector<double> y = rope<double>(x, inv_freq, B, S, heads, hd);
  for (int64_t v = 0; v < B * S * heads; ++v) {
    const double* xv = x.data() + v * hd;
    const double* yv = y.data() + v * hd;
    EXPECT_NEAR(head_dot(yv, yv, hd), head_dot(xv, xv, hd), 1e-13) << v;
  }
}

TEST(Rope, FloatMatchesDouble) {
  const int64_t B = 2, S = 1024, heads = 2, hd = 16;
  const std::vector<float> inv_freq = rope_inv_freq(hd, 1e4, true, 8192, 2048);
  const std::vector<double> x = random_vector(B * S * heads * hd, 4);  // [B, S, heads, hd]
  const std::vector<double> yd = rope<double>(x, inv_freq, B, S, heads, hd, 2);
  const std::vector<float> yf = rope<float>(x, inv_freq, B, S, heads, hd, 2);
  double max_err = 0, max_abs = 0;
  for (size_t i = 0; i < yd.size(); ++i) {
    max_err = std::max(max_err, std::abs(yf[i] - yd[i]));
    max_abs = std::max(max_abs, std::abs(yd[i]));
  }
  EXPECT_LT(max_err / max_abs, 1e-6);
}

// RoPE's purpose: the score between a query at position p and a key at p' depends on p − p' only.
TEST(Rope, ScoreDependsOnlyOnRelativePosition) {
  const int64_t S = 24, heads = 2, hd = 8;
  const std::vector<float> inv_freq = rope_inv_freq(hd, 1e4, true, 8192, 2048);
  // The same query vector u (head 0) and key vector w (head 1) at every position.
  const std::vector<double> uw = random_vector(heads * hd, 5);
  std::vector<double> x;  // [1, S, heads, hd]
  for (int64_t s = 0; s < S; ++s) x.insert(x.end(), uw.begin(), uw.end());
  const std::vector<double> y = rope<double>(x, inv_freq, 1, S, heads, hd);
  auto score = [&](int64_t p, int64_t pk) {
    return head_dot(y.data() + p * heads * hd, y.data() + pk * heads * hd + hd, hd);
  };
  for (int64_t d = -(S - 1); d < S; ++d) {
    const int64_t p0 = std::max<int64_t>(0, d);  // first pair (p0, p0 − d) inside the sequence
    for (int64_t p = p0; p < S && p - d < S; ++p) {
      EXPECT_NEAR(score(p, p - d), score(p0, p0 - d), 1e-12) << "p " << p << " d " << d;
    }
  }
  EXPECT_GT(std::abs(score(1, 0) - score(0, 0)), 1e-3);  // the score does depend on p − p'
}

TEST(Rope, GradientMatchesFiniteDifferences) {
  struct Case {
    int64_t B, S, heads, hd, pad;
  };
  const Case cases[] = {{2, 5, 3, 4, 3}, {1, 7, 1, 8, 0}, {2, 3, 2, 2, 5}, {2, 6, 2, 16, 1}};
  uint64_t seed = 10;
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "B " << c.B << " S " << c.S << " heads " << c.heads << " hd "
                                    << c.hd << " pad " << c.pad);
    const int64_t rows = c.B * c.S, width = c.heads * c.hd, ld = width + c.pad;
    const std::vector<float> inv_freq = rope_inv_freq(c.hd, 1e4, c.hd > 2, 8192, 2048);
    std::vector<double> x = random_vector(rows * width, seed++);        // [B, S, heads, hd]
    const std::vector<double> r = random_vector(rows * width, seed++);  // [B, S, heads, hd]
    // dx is written at stride ld into a buffer whose other columns must stay untouched.
    const double sentinel = 1234.5;
    std::vector<double> dx_wide(static_cast<size_t>(rows * ld), sentinel);  // [B·S, ld]
    rope_backward(dx_wide.data() + c.pad, ld, r.data(), inv_freq.data(), c.B, c.S, c.heads, c.hd);
    std::vector<double> dx(x.size());  // [B, S, heads, hd]
    for (int64_t t = 0; t < rows; ++t) {
      for (int64_t j = 0; j < c.pad; ++j) EXPECT_EQ(dx_wide[t * ld + j], sentinel);
      for (int64_t j = 0; j < width; ++j) dx[t * width + j] = dx_wide[t * ld + c.pad + j];
    }
    test::check_gradients({{"x", &x, &dx}}, [&] {
      return test::dot(rope<double>(x, inv_freq, c.B, c.S, c.heads, c.hd, c.pad), r);
    });
  }
}

}  // namespace
}  // namespace hymba::cpu
