// Finite-difference gradient checks in double, shared by every backward test.
//
// Use: build a probe loss L = Σ out ⊙ r with a fixed random r, run the forward and the hand-written
// backward once with dout = r, then let check_gradients perturb each input element and compare
// the analytic gradient with (L(x+h) − L(x−h)) / 2h.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"

namespace hymba::test {

// Random values in [-scale, scale) (never all zero), deterministic in seed.
inline std::vector<double> random_vector(size_t n, uint64_t seed, double scale = 1.0) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * (2.0 * uniform01(seed, 0x9ad, i) - 1.0);
  return v;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

template <class T>
std::vector<T> cast_vector(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// One tensor under test: its values (which the check perturbs and restores) and the analytic
// gradient computed beforehand by the backward under test.
struct GradInput {
  std::string name;
  std::vector<double>* values;
  const std::vector<double>* grad;
};

struct GradCheckOptions {
  double tolerance = 1e-6;      // max |analytic − numeric| / max |numeric| per tensor
  double step = 1e-5;           // the difference step h (fourth order: see check_gradients)
  size_t max_elements = 96;     // elements checked per tensor (all if the tensor is smaller)
  bool require_nonzero = true;  // a gradient that is zero everywhere cannot test anything
};

// Relative error of each tensor's gradient; reports failures through gtest.
inline void check_gradients(const std::vector<GradInput>& inputs, const std::function<double()>& loss,
                            const GradCheckOptions& opt = {}) {
  for (const GradInput& in : inputs) {
    std::vector<double>& x = *in.values;
    ASSERT_EQ(x.size(), in.grad->size()) << in.name;
    // Which elements: all of a small tensor, else an evenly spread deterministic sample.
    std::vector<size_t> idx;
    if (x.size() <= opt.max_elements) {
      for (size_t i = 0; i < x.size(); ++i) idx.push_back(i);
    } else {
      for (size_t j = 0; j < opt.max_elements; ++j) {
        idx.push_back(static_cast<size_t>(uniform01(17, hash_name(in.name), j) * x.size()));
      }
    }
    double max_err = 0, max_num = 0;
    size_t worst = 0;
    for (size_t i : idx) {
      // The fourth-order central difference (8·(f(x+h) − f(x−h)) − (f(x+2h) − f(x−2h))) / 12h:
      // its error falls as h⁴, so strongly curved points (a norm over a small row: the plain
      // difference's h² error reached 3e-6 at h = 1e-5) stay far below the tolerance.
      const double saved = x[i];
      const auto at = [&](double offset) {
        x[i] = saved + offset;
        return loss();
      };
      const double h = opt.step;
      const double numeric = (8 * (at(h) - at(-h)) - (at(2 * h) - at(-2 * h))) / (12 * h);
      x[i] = saved;
      const double err = std::abs(numeric - (*in.grad)[i]);
      if (err > max_err) max_err = err, worst = i;
      max_num = std::max(max_num, std::abs(numeric));
    }
    if (opt.require_nonzero) {
      EXPECT_GT(max_num, 1e-9) << in.name << ": gradient is zero at every checked element";
    }
    const double rel = max_err / std::max(max_num, 1e-30);
    EXPECT_LT(rel, opt.tolerance) << in.name << ": relative error " << rel << " (worst element "
                                  << worst << ": analytic " << (*in.grad)[worst] << ")";
  }
}

}  // namespace hymba::test
