#include "cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

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
void cross_entropy_partials(T* stats, const T* logits, int64_t ld, VocabRange vocab, const int32_t* targets,
                            int64_t rows) {
  const int64_t columns = vocab.end - vocab.begin;
#pragma omp parallel for schedule(static) if (rows * columns >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T* z = logits + r * ld;  // [columns]
    double zmax = -std::numeric_limits<double>::infinity(), sum = 0;
    for (int64_t v = 0; v < columns; ++v) zmax = std::max(zmax, double(z[v]));
    for (int64_t v = 0; v < columns; ++v) sum += std::exp(double(z[v]) - zmax);
    const int32_t target = targets[r];
    T* s = stats + r * kCrossEntropyStats;
    s[0] = T(zmax);
    s[1] = T(sum);
    s[2] = target != kIgnoreIndex && vocab.holds(target) ? z[target - vocab.begin] : T(0);
  }
}

template <class T>
double cross_entropy_from_partials(T* dlogits, const T* logits, int64_t ld, VocabRange vocab, const T* all,
                                   int64_t ranks, const int32_t* targets, int64_t rows, double grad_scale) {
  const int64_t columns = vocab.end - vocab.begin;
  double total = 0;  // a reproducible sum: see parallel.h
  parallel_for_reduce(rows, 1, &total, rows * ld, [&](int64_t r, double* row_loss) {
    const int32_t target = targets[r];
    T* dz = dlogits ? dlogits + r * ld : nullptr;  // [ld]
    if (target == kIgnoreIndex) {
      if (dz) std::fill(dz, dz + ld, T(0));
      return;
    }
    // Every rank's (max, sum) rescaled to the common max, added in rank order.
    double zmax = -std::numeric_limits<double>::infinity(), sum = 0, target_logit = 0;
    for (int64_t q = 0; q < ranks; ++q) zmax = std::max(zmax, double(all[(q * rows + r) * kCrossEntropyStats]));
    for (int64_t q = 0; q < ranks; ++q) {
      const T* s = all + (q * rows + r) * kCrossEntropyStats;
      if (s[1] > T(0)) sum += double(s[1]) * std::exp(double(s[0]) - zmax);
      target_logit += double(s[2]);
    }
    const double lse = zmax + std::log(sum);
    *row_loss += lse - target_logit;
    if (!dz) return;
    const T* z = logits + r * ld;  // read z[v] before writing dz[v]: they may alias
    for (int64_t v = 0; v < columns; ++v) {
      const double p = std::exp(double(z[v]) - lse);
      dz[v] = T((p - (v + vocab.begin == target ? 1.0 : 0.0)) * grad_scale);
    }
    std::fill(dz + columns, dz + ld, T(0));
  });
  return total;
}

template <class T>
double cross_entropy(T* dlogits, const T* logits, const int32_t* targets, int64_t rows,
                     int64_t V, double grad_scale) {
  check_targets(targets, rows, V);
  std::vector<T> stats(size_t(rows * kCrossEntropyStats));  // [rows, 3]
  const VocabRange all_ids{0, V};
  cross_entropy_partials(stats.data(), logits, V, all_ids, targets, rows);
  return cross_entropy_from_partials(dlogits, logits, V, all_ids, stats.data(), 1, targets, rows, grad_scale);
}

#define HYMBA_INSTANTIATE(T)                                                                                     \
  template double cross_entropy<T>(T*, const T*, const int32_t*, int64_t, int64_t, double);                     \
  template void cross_entropy_partials<T>(T*, const T*, int64_t, VocabRange, const int32_t*, int64_t);          \
  template double cross_entropy_from_partials<T>(T*, const T*, int64_t, VocabRange, const T*, int64_t,           \
                                                 const int32_t*, int64_t, double);
HYMBA_INSTANTIATE(float)
HYMBA_INSTANTIATE(double)
#undef HYMBA_INSTANTIATE

}  // namespace hymba::cpu
