#include "cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "cpu/parallel.h"

namespace hymba::cpu {

void check_targets(const int32_t* targets, int64_t rows, int64_t V) {
  for (int64_t r = 0; r < rows; ++r) {
    if (targets[r] != kIgnoreIndex && (targets[r] < 0 || targets[r] >= V)) {
      fail("target id ", targets[r], " at row ", r, " is outside the vocabulary [0, ", V, ")");
    }
  }
}

template <class T>
double cross_entropy(T* dlogits, const T* logits, const int32_t* targets, int64_t rows,
                     int64_t V, double grad_scale) {
  check_targets(targets, rows, V);
  double total = 0;  // a reproducible sum: see parallel.h
  parallel_for_reduce(rows, 1, &total, rows * V, [&](int64_t r, double* row_loss) {
    const T* z = logits + r * V;  // [V]
    const int32_t target = targets[r];
    if (target == kIgnoreIndex) {
      if (dlogits) std::fill(dlogits + r * V, dlogits + (r + 1) * V, T(0));
      return;
    }
    double zmax = z[0];
    for (int64_t v = 1; v < V; ++v) zmax = std::max(zmax, double(z[v]));
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(z[v]) - zmax);
    const double lse = zmax + std::log(sum);
    *row_loss += lse - double(z[target]);
    if (dlogits) {
      T* dz = dlogits + r * V;  // [V]; read z[v] before writing dz[v]: they may alias
      for (int64_t v = 0; v < V; ++v) {
        const double p = std::exp(double(z[v]) - lse);
        dz[v] = T((p - (v == target ? 1.0 : 0.0)) * grad_scale);
      }
    }
  });
  return total;
}

template double cross_entropy<float>(float*, const float*, const int32_t*, int64_t, int64_t,
                                     double);
template double cross_entropy<double>(double*, const double*, const int32_t*, int64_t, int64_t,
                                      double);

}  // namespace hymba::cpu
