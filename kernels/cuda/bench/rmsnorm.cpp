// bench-rmsnorm: times the CUDA RMSNorm forward and backward, fp32 and bf16 activations, at the
// Hymba widths and prints the effective bandwidth (each tensor read or written once) against the
// measured copy bandwidth. A benchmark program, not a test: it checks nothing but CUDA return codes.
#include <cstdio>

#include "cuda/bench/bench_util.h"
#include "cuda/rmsnorm.h"

namespace {

using namespace hymba::bench;

// TB/s of `bytes` moved in `ms` milliseconds.
double tbs(double bytes, float ms) { return bytes / (ms * 1e-3) / 1e12; }

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
    auto bwd = [&](bool accumulate) {
      hymba::cuda::rmsnorm_backward<T>(dx.data(), dim, dw.data(), dy.data(), dim, x.data(), dim, w.data(), rstd.data(),
                                       rows, dim, accumulate, work.data(), nullptr);
    };
    fwd();  // rstd from a real forward for the backward's own timing
    const float f_ms = median_ms(fwd);
    const float b_ms = median_ms([&] { bwd(false); });
    const float fb_ms = median_ms([&] { fwd(); bwd(false); });
    const float a_ms = median_ms([&] { bwd(true); });  // dx +=, as the residual stream's norms run
    // Bytes, each [rows, dim] tensor counted once at sizeof(T) per element. Forward: read x, write
    // y. Backward: read x and dy, write dx (with dx +=, also read dx). (w, rstd, dw and the dw
    // partials are small.)
    const double tensor = double(rows) * dim * sizeof(T);
    const int moved[4] = {2, 3, 5, 4};  // tensors moved: forward, backward, both, backward with dx +=
    const float ms[4] = {f_ms, b_ms, fb_ms, a_ms};
    std::printf("%5s %5lld", dtype, static_cast<long long>(dim));
    for (int i = 0; i < 4; ++i) {
      const double r = tbs(moved[i] * tensor, ms[i]);
      std::printf("  %7.4f %5.2f %4.0f%%", ms[i], r, 100 * r / kCopyTBs);
    }
    // Two roofs under each line: a copy of the same bytes (one launch's costs included), and the
    // same loads and stores with no arithmetic (forward 1 read, 1 write; backward 2 and 1; with
    // dx += 3 and 1), one launch per kernel launch of the norm but the dw reduction.
    const Traffic forward{1, 1}, backward{2, 1}, accumulate{3, 1};
    const float roofs[4] = {roof_ms({forward}, tensor), roof_ms({backward}, tensor),
                            roof_ms({forward, backward}, tensor), roof_ms({accumulate}, tensor)};
    for (const bool copy : {true, false}) {
      std::printf("\n%5s %5s", "", copy ? "copy" : "loads");
      for (int i = 0; i < 4; ++i) {
        const float c = copy ? copy_ms(moved[i] * tensor) : roofs[i];
        const double r = tbs(moved[i] * tensor, c);
        std::printf("  %7.4f %5.2f %4.0f%%", c, r, 100 * r / kCopyTBs);
      }
    }
    std::printf("\n");
  }
}

}  // namespace

int main() {
  if (!hymba::bench::have_gpu("bench-rmsnorm")) return 1;
  const int64_t rows = 8 * 2176;  // batch 8 of 128 meta + 2048 text tokens
  std::printf("RMSNorm, rows %lld (8 x 2176), medians of 50 runs; TB/s counts each [rows, dim] tensor once\n"
              "(forward 2: x, y; backward 3: x, dy, dx; forward + backward 5; backward with dx += 4), %% of the\n"
              "%.1f TB/s copy bandwidth; under each line, a device-to-device copy of the same bytes (copy) and a\n"
              "kernel with the same loads and stores and no arithmetic (loads)\n",
              static_cast<long long>(rows), kCopyTBs);
  std::printf("%5s %5s  %7s %5s %5s  %7s %5s %5s  %7s %5s %5s  %7s %5s %5s\n", "dtype", "dim", "fwd ms", "TB/s", "%",
              "bwd ms", "TB/s", "%", "f+b ms", "TB/s", "%", "dx+= ms", "TB/s", "%");
  bench<float>("fp32", rows);
  bench<bf16>("bf16", rows);
  return 0;
}
