// Threading helpers for the CPU kernels.
//
// kMinParallelWork: loops with less work than this (in inner iterations) run on one thread.
// Waking a thread team costs microseconds when the cores are free and up to milliseconds when
// they are oversubscribed (e.g. tests running side by side), far more than a small loop.
//
// parallel_for_reduce: a parallel loop whose threads each sum into a private buffer, added
// together afterwards in thread order. Why not `omp critical` or atomics: their order varies run
// to run, and exact resume (same losses, bit for bit) needs every reduction to be reproducible.
// With a static schedule and a fixed thread count the result is identical on every run.
#pragma once

#include <omp.h>

#include <cstdint>
#include <vector>

namespace hymba::cpu {

inline constexpr int64_t kMinParallelWork = 1 << 14;

// body(i, acc) runs for every i in [0, count); acc points to this thread's double[n], zeroed.
// Afterwards out[j] += Σ_threads acc[j]. `work` (inner iterations in all) picks the thread count.
template <class T, class Body>
void parallel_for_reduce(int64_t count, int64_t n, T* out, int64_t work, Body body) {
  const int threads = work < kMinParallelWork ? 1 : omp_get_max_threads();
  std::vector<double> partial(static_cast<size_t>(threads) * static_cast<size_t>(n), 0.0);
#pragma omp parallel num_threads(threads)
  {
    double* acc = partial.data() + static_cast<size_t>(omp_get_thread_num()) * n;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < count; ++i) body(i, acc);
  }
  for (int t = 0; t < threads; ++t) {
    const double* acc = partial.data() + static_cast<size_t>(t) * n;
    for (int64_t j = 0; j < n; ++j) out[j] += T(acc[j]);
  }
}

}  // namespace hymba::cpu
