// bench-rmsnorm: times the fp32 CUDA RMSNorm forward and backward at the Hymba widths and prints
// the effective bandwidth (each tensor read or written once) against the measured copy bandwidth.
// A benchmark program, not a test: it checks nothing but CUDA return codes.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "core/cuda_check.h"
#include "core/device.h"
#include "core/rng.h"
#include "cuda/rmsnorm.h"

namespace {

float* device_random(int64_t n, uint64_t seed) {
  std::vector<float> h(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) h[i] = float(2 * hymba::uniform01(seed, 1, i) - 1);
  float* d = nullptr;
  HYMBA_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&d), n * sizeof(float)));
  HYMBA_CUDA_CHECK(cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  return d;
}

// Median milliseconds of `reps` runs of f after warm-up, timed with events.
template <class F>
float median_ms(F f, int reps = 50) {
  for (int i = 0; i < 5; ++i) f();
  cudaEvent_t a, b;
  HYMBA_CUDA_CHECK(cudaEventCreate(&a));
  HYMBA_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    HYMBA_CUDA_CHECK(cudaEventRecord(a));
    f();
    HYMBA_CUDA_CHECK(cudaEventRecord(b));
    HYMBA_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    HYMBA_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main() {
  if (hymba::cuda_device_count() == 0) {
    std::fprintf(stderr, "bench-rmsnorm: no GPU found\n");
    return 1;
  }
  constexpr double kCopyTBs = 3.0;  // measured device-to-device copy on the H100 (bytes read + written)
  const int64_t rows = 8 * 2176;    // batch 8 of 128 meta + 2048 text tokens
  std::printf("fp32 RMSNorm, rows %lld (8 x 2176), times are medians of 50 runs\n", static_cast<long long>(rows));
  std::printf("%6s %10s %10s %12s %12s\n", "dim", "fwd ms", "fwd TB/s", "fwd+bwd ms", "fwd+bwd TB/s");
  for (const int64_t dim : {1600, 3200}) {
    float* x = device_random(rows * dim, 1);
    float* dy = device_random(rows * dim, 2);
    float* w = device_random(dim, 3);
    float* y = device_random(rows * dim, 4);
    float* dx = device_random(rows * dim, 5);
    float* dw = device_random(dim, 6);
    float* rstd = device_random(rows, 7);
    float* work = device_random(hymba::cuda::rmsnorm_backward_workspace(rows, dim), 8);
    auto fwd = [&] { hymba::cuda::rmsnorm_forward(y, dim, rstd, x, dim, w, rows, dim, 1e-6, nullptr); };
    auto bwd = [&] {
      hymba::cuda::rmsnorm_backward(dx, dim, dw, dy, dim, x, dim, w, rstd, rows, dim, false, work, nullptr);
    };
    const double tensor = double(rows) * dim * sizeof(float);
    const float f_ms = median_ms(fwd);
    const float fb_ms = median_ms([&] { fwd(); bwd(); });
    // Forward: read x, write y. Backward: read x and dy, write dx. (w, rstd, dw are small.)
    const double f_tbs = 2 * tensor / (f_ms * 1e-3) / 1e12;
    const double fb_tbs = 5 * tensor / (fb_ms * 1e-3) / 1e12;
    std::printf("%6lld %10.4f %10.2f %12.4f %12.2f   (%.0f%% / %.0f%% of %.1f TB/s)\n", static_cast<long long>(dim),
                f_ms, f_tbs, fb_ms, fb_tbs, 100 * f_tbs / kCopyTBs, 100 * fb_tbs / kCopyTBs, kCopyTBs);
    for (float* p : {x, dy, w, y, dx, dw, rstd, work}) HYMBA_CUDA_CHECK(cudaFree(p));
  }
  return 0;
}
