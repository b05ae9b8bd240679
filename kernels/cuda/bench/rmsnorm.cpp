// bench-rmsnorm: times the CUDA RMSNorm forward and backward, fp32 and bf16 activations, at the
// Hymba widths and prints the effective bandwidth (each tensor read or written once) against the
// measured copy bandwidth. A benchmark program, not a test: it checks nothing but CUDA return codes.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <type_traits>
#include <vector>

#include "core/cuda_check.h"
#include "core/device.h"
#include "core/rng.h"
#include "cuda/rmsnorm.h"

namespace {

using bf16 = __nv_bfloat16;

// n values uniform in [-1, 1), rounded to T, on the device.
template <class T>
T* device_random(int64_t n, uint64_t seed) {
  std::vector<T> h(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float v = float(2 * hymba::uniform01(seed, 1, i) - 1);
    if constexpr (std::is_same_v<T, float>) {
      h[i] = v;
    } else {
      h[i] = __float2bfloat16_rn(v);
    }
  }
  T* d = nullptr;
  HYMBA_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&d), n * sizeof(T)));
  HYMBA_CUDA_CHECK(cudaMemcpy(d, h.data(), n * sizeof(T), cudaMemcpyHostToDevice));
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
  HYMBA_CUDA_CHECK(cudaEventDestroy(a));
  HYMBA_CUDA_CHECK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

constexpr double kCopyTBs = 3.0;  // measured device-to-device copy on the H100 (bytes read + written)

// One line per width for activations of type T.
template <class T>
void bench(const char* dtype, int64_t rows) {
  for (const int64_t dim : {1600, 3200}) {
    T* x = device_random<T>(rows * dim, 1);
    T* dy = device_random<T>(rows * dim, 2);
    T* y = device_random<T>(rows * dim, 4);
    T* dx = device_random<T>(rows * dim, 5);
    float* w = device_random<float>(dim, 3);
    float* dw = device_random<float>(dim, 6);
    float* rstd = device_random<float>(rows, 7);
    float* work = device_random<float>(hymba::cuda::rmsnorm_backward_workspace(rows, dim), 8);
    auto fwd = [&] { hymba::cuda::rmsnorm_forward<T>(y, dim, rstd, x, dim, w, rows, dim, 1e-6, nullptr); };
    auto bwd = [&] {
      hymba::cuda::rmsnorm_backward<T>(dx, dim, dw, dy, dim, x, dim, w, rstd, rows, dim, false, work, nullptr);
    };
    const float f_ms = median_ms(fwd);
    const float fb_ms = median_ms([&] { fwd(); bwd(); });
    // Bytes per row, each [rows, dim] tensor counted once at sizeof(T) per element. Forward: read
    // x, write y. Backward: read x and dy, write dx. (w, rstd, dw and the dw partials are small.)
    const double f_row = 2.0 * dim * sizeof(T), fb_row = 5.0 * dim * sizeof(T);
    const double f_tbs = f_row * rows / (f_ms * 1e-3) / 1e12;
    const double fb_tbs = fb_row * rows / (fb_ms * 1e-3) / 1e12;
    std::printf("%5s %6lld %9.0f %9.4f %9.2f %11.0f %11.4f %11.2f   (%.0f%% / %.0f%% of %.1f TB/s)\n", dtype,
                static_cast<long long>(dim), f_row, f_ms, f_tbs, fb_row, fb_ms, fb_tbs, 100 * f_tbs / kCopyTBs,
                100 * fb_tbs / kCopyTBs, kCopyTBs);
    for (void* p : {static_cast<void*>(x), static_cast<void*>(dy), static_cast<void*>(y), static_cast<void*>(dx),
                    static_cast<void*>(w), static_cast<void*>(dw), static_cast<void*>(rstd), static_cast<void*>(work)}) {
      HYMBA_CUDA_CHECK(cudaFree(p));
    }
  }
}

}  // namespace

int main() {
  if (hymba::cuda_device_count() == 0) {
    std::fprintf(stderr, "bench-rmsnorm: no GPU found\n");
    return 1;
  }
  const int64_t rows = 8 * 2176;  // batch 8 of 128 meta + 2048 text tokens
  std::printf("RMSNorm, rows %lld (8 x 2176), times are medians of 50 runs\n", static_cast<long long>(rows));
  std::printf("%5s %6s %9s %9s %9s %11s %11s %11s\n", "dtype", "dim", "fwd B/row", "fwd ms", "fwd TB/s",
              "f+b B/row", "fwd+bwd ms", "f+b TB/s");
  bench<float>("fp32", rows);
  bench<bf16>("bf16", rows);
  return 0;
}
