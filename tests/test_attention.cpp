#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <utility>
#include <vector>

#include "cpu/attention.h"
#include "gradcheck.h"

namespace hymba::cpu {
namespace {

using test::random_vector;

testing::Message describe(const AttentionShape& s) {
  return testing::Message() << "B " << s.B << " S " << s.S << " nh " << s.nh << " nkv " << s.nkv
                            << " hd " << s.hd << " vd " << s.vd << (s.global ? " global" : " local")
                            << " W " << s.window << " M " << s.meta;
}

// Attention inputs in double; each test casts them to the element type it runs.
struct Inputs {
  std::vector<double> q;  // [B, S, nh, hd]
  std::vector<double> k;  // [B, S, nkv, hd]
  std::vector<double> v;  // [B, S, nkv, vd]
};

Inputs random_inputs(const AttentionShape& s, uint64_t seed) {
  return {random_vector(s.B * s.S * s.nh * s.hd, seed),
          random_vector(s.B * s.S * s.nkv * s.hd, seed + 1),
          random_vector(s.B * s.S * s.nkv * s.vd, seed + 2)};
}

// v as a column slice of a wider matrix (token stride nkv·vd + pad, slice at column pad) whose
// other columns are NaN: a read outside the slice poisons the result.
template <class T>
std::vector<T> wide_v(const std::vector<double>& v, const AttentionShape& s, int64_t pad) {
  const int64_t width = s.nkv * s.vd, ld = width + pad;
  std::vector<T> wide(static_cast<size_t>(s.B * s.S * ld), std::numeric_limits<T>::quiet_NaN());
  for (int64_t t = 0; t < s.B * s.S; ++t) {
    for (int64_t c = 0; c < width; ++c) wide[t * ld + pad + c] = T(v[t * width + c]);
  }
  return wide;  // [B·S, ld]
}

template <class T>
struct Forward {
  std::vector<T> out;  // [B, S, nh, vd]
  std::vector<T> lse;  // [B, nh, S]
};

template <class T>
Forward<T> forward(const Inputs& in, const AttentionShape& s, int64_t vpad = 0) {
  const std::vector<T> q(in.q.begin(), in.q.end()), k(in.k.begin(), in.k.end());
  const std::vector<T> v = wide_v<T>(in.v, s, vpad);
  Forward<T> f{std::vector<T>(s.B * s.S * s.nh * s.vd), std::vector<T>(s.B * s.nh * s.S)};
  attention_forward(f.out.data(), f.lse.data(), q.data(), k.data(), v.data() + vpad,
                    s.nkv * s.vd + vpad, s);
  return f;
}

template <class T>
struct Grads {
  std::vector<T> dq, dk, dv;
};

// Backward with dout, into dq/dk/dv that start at zero, or at `acc`'s values (to test = and +=).
template <class T>
Grads<T> backward(const Inputs& in, const AttentionShape& s, const std::vector<double>& dout,
                  int64_t vpad, Grads<T> acc = {}) {
  const std::vector<T> q(in.q.begin(), in.q.end()), k(in.k.begin(), in.k.end());
  const std::vector<T> v = wide_v<T>(in.v, s, vpad), dout_t(dout.begin(), dout.end());
  const Forward<T> f = forward<T>(in, s, vpad);
  acc.dq.resize(q.size());
  acc.dk.resize(k.size());
  acc.dv.resize(in.v.size());
  attention_backward(acc.dq.data(), acc.dk.data(), acc.dv.data(), dout_t.data(), q.data(), k.data(),
                     v.data() + vpad, s.nkv * s.vd + vpad, f.out.data(), f.lse.data(), s);
  return acc;
}

// The keys query i sees, built from HYMBA_SPEC §2.5's prose rather than from attention_allows:
// global layers are causal; other layers see the window+1 most recent positions (the query
// included) plus every meta token, and never a later position (so meta queries are causal among
// the meta tokens).
std::vector<bool> visible_keys(int64_t i, const AttentionShape& s) {
  std::vector<bool> seen(static_cast<size_t>(s.S), false);
  const int64_t oldest = s.global ? 0 : std::max<int64_t>(0, i - s.window);
  for (int64_t j = oldest; j <= i; ++j) seen[j] = true;
  if (!s.global) {
    for (int64_t j = 0; j < std::min(s.meta, i + 1); ++j) seen[j] = true;
  }
  return seen;
}

// Independent double reference: the full score row of each (b, h, i), −∞ where the mask forbids,
// then softmax and the weighted sum of values; lse = log Σ exp(score) summed directly.
Forward<double> naive_attention(const Inputs& in, const AttentionShape& s) {
  const int64_t rep = s.nh / s.nkv;
  Forward<double> f{std::vector<double>(s.B * s.S * s.nh * s.vd, 0.0),
                    std::vector<double>(s.B * s.nh * s.S)};
  std::vector<double> score(s.S);  // [S]
  for (int64_t b = 0; b < s.B; ++b) {
    for (int64_t h = 0; h < s.nh; ++h) {
      for (int64_t i = 0; i < s.S; ++i) {
        const std::vector<bool> seen = visible_keys(i, s);
        double sum = 0;
        for (int64_t j = 0; j < s.S; ++j) {
          score[j] = -std::numeric_limits<double>::infinity();
          if (!seen[j]) continue;
          double d = 0;
          for (int64_t c = 0; c < s.hd; ++c) {
            d += in.q[((b * s.S + i) * s.nh + h) * s.hd + c] *
                 in.k[((b * s.S + j) * s.nkv + h / rep) * s.hd + c];
          }
          score[j] = d / std::sqrt(double(s.hd));
        }
        for (int64_t j = 0; j < s.S; ++j) sum += std::exp(score[j]);
        for (int64_t j = 0; j < s.S; ++j) {
          for (int64_t c = 0; c < s.vd; ++c) {
            f.out[((b * s.S + i) * s.nh + h) * s.vd + c] +=
                std::exp(score[j]) / sum * in.v[((b * s.S + j) * s.nkv + h / rep) * s.vd + c];
          }
        }
        f.lse[(b * s.nh + h) * s.S + i] = std::log(sum);
      }
    }
  }
  return f;
}

template <class T>
double max_abs_diff(const std::vector<T>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - b[i]));
  return m;
}

// {B, S, nh, nkv, hd, vd, global, window, meta}: windows from 0 to past S, with and without meta
// tokens, GQA groups of 1, 2 and 3, hd ≠ vd both ways.
const AttentionShape kShapes[] = {
    {2, 7, 2, 2, 4, 8, true, 0, 0},    // global, MHA
    {2, 9, 6, 2, 4, 8, false, 2, 3},   // SWA + meta, 3 query heads per KV head
    {1, 8, 4, 2, 8, 4, false, 0, 2},   // window 0: itself and the meta tokens
    {2, 5, 3, 1, 4, 4, false, 6, 2},   // window longer than the sequence
    {1, 6, 2, 1, 6, 2, false, 6, 0},   // window = S
    {2, 10, 2, 1, 4, 8, true, 3, 4},   // global ignores window and meta
    {1, 9, 2, 2, 4, 8, false, 1, 6},   // more meta tokens than the window
    {2, 11, 4, 2, 4, 8, false, 3, 0},  // pure sliding window
};

// Big enough for the kernels' parallel path.
const AttentionShape kLarge = {2, 40, 6, 2, 8, 16, false, 7, 3};

TEST(Attention, GradientMatchesFiniteDifferences) {
  uint64_t seed = 100;
  for (const AttentionShape& s : kShapes) {
    SCOPED_TRACE(describe(s));
    const int64_t vpad = 3;
    Inputs in = random_inputs(s, seed);
    const std::vector<double> r = random_vector(s.B * s.S * s.nh * s.vd, seed + 3);  // dout
    seed += 4;
    const Grads<double> g = backward<double>(in, s, r, vpad);
    test::check_gradients({{"q", &in.q, &g.dq}, {"k", &in.k, &g.dk}, {"v", &in.v, &g.dv}},
                          [&] { return test::dot(forward<double>(in, s, vpad).out, r); });
  }
}

// dk and dv accumulate (cross-layer KV sharing sums several layers into them); dq is written.
TEST(Attention, BackwardAccumulatesDkDvButWritesDq) {
  const AttentionShape s = kShapes[1];
  const Inputs in = random_inputs(s, 7);
  const std::vector<double> r = random_vector(s.B * s.S * s.nh * s.vd, 8);
  const Grads<double> once = backward<double>(in, s, r, 2);
  const Grads<double> twice = backward<double>(in, s, r, 2, once);
  EXPECT_EQ(twice.dq, once.dq);
  for (size_t i = 0; i < once.dk.size(); ++i) EXPECT_EQ(twice.dk[i], 2 * once.dk[i]) << i;
  for (size_t i = 0; i < once.dv.size(); ++i) EXPECT_EQ(twice.dv[i], 2 * once.dv[i]) << i;
}

template <class T>
void expect_matches_naive(double tol) {
  std::vector<AttentionShape> shapes(std::begin(kShapes), std::end(kShapes));
  shapes.push_back(kLarge);
  uint64_t seed = 200;
  for (const AttentionShape& s : shapes) {
    SCOPED_TRACE(describe(s));
    const Inputs in = random_inputs(s, seed += 3);
    const Forward<T> f = forward<T>(in, s, 1);
    const Forward<double> ref = naive_attention(in, s);
    EXPECT_LT(max_abs_diff(f.out, ref.out), tol);
    EXPECT_LT(max_abs_diff(f.lse, ref.lse), tol);  // lse = log Σ_allowed exp(score)
  }
}

TEST(Attention, DoubleMatchesNaiveOutputAndLse) { expect_matches_naive<double>(1e-13); }
TEST(Attention, FloatMatchesNaiveOutputAndLse) { expect_matches_naive<float>(2e-6); }

// Scores near 5000 overflow exp() even in double unless the row max is subtracted. A constant
// added to every score of a row leaves the softmax unchanged and shifts lse by that constant:
// a last q/k component of A adds A²/sqrt(hd) to every score.
template <class T>
void expect_stable_for_huge_scores(double tol) {
  const AttentionShape s = kShapes[1];
  const Inputs in = random_inputs(s, 300);
  Inputs shifted = in;
  const double A = 100, shift = A * A / std::sqrt(double(s.hd));
  for (size_t i = s.hd - 1; i < in.q.size(); i += s.hd) shifted.q[i] = A;
  for (size_t i = s.hd - 1; i < in.k.size(); i += s.hd) shifted.k[i] = A;
  Inputs zeroed = shifted;  // the same scores without the shift
  for (size_t i = s.hd - 1; i < in.q.size(); i += s.hd) zeroed.q[i] = 0;
  const Forward<T> big = forward<T>(shifted, s), ref = forward<T>(zeroed, s);
  for (size_t i = 0; i < ref.out.size(); ++i) EXPECT_NEAR(big.out[i], ref.out[i], tol) << i;
  for (size_t i = 0; i < ref.lse.size(); ++i) {
    EXPECT_NEAR(big.lse[i] - shift, ref.lse[i], tol * shift) << i;
  }
}

TEST(Attention, StableForHugeScoresDouble) { expect_stable_for_huge_scores<double>(1e-10); }
TEST(Attention, StableForHugeScoresFloat) { expect_stable_for_huge_scores<float>(1e-5); }

// The mask pinned by behaviour: changing the value (or key) at position j changes the output (or
// lse) of query i exactly when i sees j. Unseen keys must leave the row bit-identical.
void expect_mask(const AttentionShape& s) {
  SCOPED_TRACE(describe(s));
  ASSERT_EQ(s.nkv, 1) << "every query head must read the perturbed KV head";
  const Inputs in = random_inputs(s, 400);
  const Forward<double> base = forward<double>(in, s);
  for (int64_t j = 0; j < s.S; ++j) {
    Inputs moved_v = in, moved_k = in;
    for (int64_t c = 0; c < s.vd; ++c) moved_v.v[j * s.vd + c] += 1.0;  // batch 0
    for (int64_t c = 0; c < s.hd; ++c) moved_k.k[j * s.hd + c] += 0.5;
    const Forward<double> fv = forward<double>(moved_v, s), fk = forward<double>(moved_k, s);
    for (int64_t i = 0; i < s.S; ++i) {
      const bool seen = visible_keys(i, s)[j];
      for (int64_t h = 0; h < s.nh; ++h) {
        const double* a = base.out.data() + (i * s.nh + h) * s.vd;  // [vd]
        const double* b = fv.out.data() + (i * s.nh + h) * s.vd;    // [vd]
        EXPECT_EQ(!std::equal(a, a + s.vd, b), seen)
            << "query " << i << " head " << h << " key " << j;
        EXPECT_EQ(fk.lse[h * s.S + i] != base.lse[h * s.S + i], seen)
            << "query " << i << " head " << h << " key " << j;
      }
    }
  }
}

TEST(Attention, MaskIsSlidingWindowPlusMetaTokens) {
  expect_mask({1, 12, 2, 1, 4, 4, false, 2, 4});  // M > W + 1: meta query 3 sees key 0
  expect_mask({1, 8, 1, 1, 4, 4, false, 3, 0});   // pure sliding window
  expect_mask({1, 7, 2, 1, 4, 4, false, 0, 2});   // window 0: itself and the meta tokens
  expect_mask({1, 6, 1, 1, 4, 4, false, 9, 1});   // window past S: causal
  expect_mask({2, 10, 3, 1, 4, 2, true, 2, 4});   // global: causal, window and meta ignored
}

// A text query sees exactly W+1 recent positions plus M meta tokens; listed out for one case.
TEST(Attention, VisibleKeysOfExampleQueries) {
  const AttentionShape s{1, 12, 1, 1, 4, 4, false, 2, 4};
  const std::pair<int64_t, std::vector<int64_t>> cases[] = {{3, {0, 1, 2, 3}},
                                                            {5, {0, 1, 2, 3, 4, 5}},
                                                            {8, {0, 1, 2, 3, 6, 7, 8}},
                                                            {11, {0, 1, 2, 3, 9, 10, 11}}};
  const Inputs in = random_inputs(s, 500);
  const Forward<double> base = forward<double>(in, s);
  for (const auto& [i, keys] : cases) {
    std::vector<int64_t> seen;
    for (int64_t j = 0; j < s.S; ++j) {
      Inputs moved = in;
      for (int64_t c = 0; c < s.vd; ++c) moved.v[j * s.vd + c] += 1.0;
      if (forward<double>(moved, s).out[i * s.vd] != base.out[i * s.vd]) seen.push_back(j);
    }
    EXPECT_EQ(seen, keys) << "query " << i;
  }
}

TEST(Attention, ResultsDoNotDependOnThreadCount) {
  const AttentionShape s = kLarge;
  const Inputs in = random_inputs(s, 600);
  const std::vector<double> r = random_vector(s.B * s.S * s.nh * s.vd, 601);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const Forward<float> f1 = forward<float>(in, s);
  const Grads<float> g1 = backward<float>(in, s, r, 0);
  omp_set_num_threads(3);
  const Forward<float> f3 = forward<float>(in, s);
  const Grads<float> g3 = backward<float>(in, s, r, 0);
  omp_set_num_threads(threads);
  EXPECT_EQ(f1.out, f3.out);
  EXPECT_EQ(f1.lse, f3.lse);
  EXPECT_EQ(g1.dq, g3.dq);
  EXPECT_EQ(g1.dk, g3.dk);
  EXPECT_EQ(g1.dv, g3.dv);
}

}  // namespace
}  // namespace hymba::cpu
