// bench-rmsnorm: times the CUDA RMSNorm forward and backward, fp32 and bf16 activations, at the
// Hymba widths and prints the effective bandwidth (each tensor read or written once) against the
// measured copy bandwidth. A benchmark program, not a test: it checks nothing but CUDA return codes.
#include <cstdio>

#include "core/device.h"
#include "cuda/bench/bench_util.h"
#include "cuda/rmsnorm.h"

namespace {

using namespace hymba::bench;

// One line per width for activations of type T.
template <class T>
void bench(const char* dtype, int64_t rows) {
  for (const int64_t dim : {1600, 3200}) {
    const auto x = device_random<T>(rows * dim, 1), dy = device_random<T>(rows * dim, 2);
    const auto y = device_random<T>(rows * dim, 4), dx = device_random<T>(rows * dim, 5);
    const auto w = device_random<float>(dim, 3), dw = device_random<float>(dim, 6);
    const auto rstd = device_random<float>(rows, 7);
    const auto work = device_random<float>(hymba::cuda::rmsnorm_backward_workspace(rows, dim), 8);
    auto fwd = [&] {
      hymba::cuda::rmsnorm_forward<T>(y.data(), dim, rstd.data(), x.data(), dim, w.data(), rows, dim, 1e-6, nullptr);
    };
    auto bwd = [&] {
      hymba::cuda::rmsnorm_backward<T>(dx.data(), dim, dw.data(), dy.data(), dim, x.data(), dim, w.data(), rstd.data(),
                                       rows, dim, false, work.data(), nullptr);
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
