// bench-selective_scan: times the CUDA selective scan (forward, backward, both) at the Hymba-1.5B
// layer size (batch 2, 128 meta + 2048 text tokens, E = 3200, N = 16) and at 4x that length, in
// bf16 and fp32, then in bf16 at 1 to 8 rows (the grid's waves); the training path: the forward
// saves its checkpoints and the backward uses them. The backward without checkpoints (it runs
// the forward kernel first, without output) is timed too. Against the two floors of the op:
//   bytes: each [B, S, E] tensor read or written once (forward: u, delta, z in, out; backward:
//          dout, u, delta, z in, du, ddelta, dz out), against the measured copy bandwidth. The
//          checkpoints (fp32, the state entering every 16 tokens: B·S·E·N/16 floats, 56 MB at
//          S = 2176, written once and read once) are this implementation's choice, not the op's,
//          so they are left out of the floor;
//   exps:  one exp(Δ·A) per (b, t, e, n) in the forward and one in the backward's recompute of
//          the states from the checkpoints (storing B·S·E·N states instead would move 16x the
//          bytes above), against the MUFU ceiling of ~4 T exp/s (132 SMs x 16 ex2 per clock x
//          ~1.9 GHz, from the architecture, not measured).
// `bench-selective_scan ROWS` times bf16 at S = 2176 and ROWS rows only (for a profiler).
// A benchmark program, not a test: it checks nothing but CUDA return codes.
#include <cstdio>
#include <cstdlib>

#include "cuda/bench/bench_util.h"
#include "cuda/selective_scan.h"

namespace {

using namespace hymba::bench;
using hymba::cuda::ScanShape;

constexpr double kExpPerSecond = 4.0e12;

template <class T>
void bench(const char* dtype, const ScanShape& s) {
  const auto [B, S, E, N] = s;
  const int64_t n = B * S * E;
  // Inputs in the ranges training sees: delta around the dt bias, A_log = log(1..N).
  const auto u = device_random<T>(n, 1), z = device_random<T>(n, 2), dout = device_random<T>(n, 3);
  const auto delta = device_random<T>(n, 4, -0.5f, 0.5f);
  const auto Bm = device_random<T>(B * S * N, 5), Cm = device_random<T>(B * S * N, 6);
  const auto dt_bias = device_random<float>(E, 7, -4.6f, -2.3f), D = device_random<float>(E, 8);
  const auto A_log = device_random<float>(E * N, 9, 0.0f, 2.77f);
  const auto out = device_random<T>(n, 10), du = device_random<T>(n, 11), ddelta = device_random<T>(n, 12);
  const auto dz = device_random<T>(n, 13), dBm = device_random<T>(B * S * N, 14), dCm = device_random<T>(B * S * N, 15);
  const auto ddt_bias = device_random<float>(E, 16), dD = device_random<float>(E, 17);
  const auto dA_log = device_random<float>(E * N, 18);
  const auto work = device_random<float>(hymba::cuda::selective_scan_backward_workspace(s), 19);
  const auto states = device_random<float>(hymba::cuda::selective_scan_checkpoint_floats(s), 20);
  const hymba::cuda::ScanInputs<T> in{u.data(),       delta.data(), z.data(), E, Bm.data(), Cm.data(),
                                      dt_bias.data(), A_log.data(), D.data()};
  const hymba::cuda::ScanGrads<T> grads{du.data(),       ddelta.data(), dz.data(), E,         dBm.data(),
                                        dCm.data(),      ddt_bias.data(), dA_log.data(), dD.data()};
  auto fwd = [&] { hymba::cuda::selective_scan_forward<T>(out.data(), nullptr, states.data(), in, s, nullptr); };
  auto bwd = [&] {
    hymba::cuda::selective_scan_backward<T>(grads, dout.data(), nullptr, in, states.data(), s, work.data(), nullptr);
  };
  auto bwd_bare = [&] {
    hymba::cuda::selective_scan_backward<T>(grads, dout.data(), nullptr, in, nullptr, s, work.data(), nullptr);
  };
  const float f_ms = median_ms(fwd, 20), b_ms = median_ms(bwd, 20), bb_ms = median_ms(bwd_bare, 20);
  const double fb_ms = f_ms + b_ms;
  const double bytes = 11.0 * double(n) * sizeof(T);  // 4 tensors in the forward, 7 in the backward
  const double exps = 2.0 * double(n) * double(N);
  const double floor_ms = 1e3 * std::max(bytes / (kCopyTBs * 1e12), exps / kExpPerSecond);
  std::printf("%5s B %lld S %5lld | fwd %8.3f ms | bwd %8.3f ms | fwd+bwd %8.3f ms | %6.2f TB/s (%4.1f%%) | "
              "%6.3f T exp/s (%4.1f%%) | floor %.3f ms (%s)\n",
              dtype, static_cast<long long>(B), static_cast<long long>(S), f_ms, b_ms, fb_ms, bytes / (fb_ms * 1e-3) / 1e12,
              100 * bytes / (fb_ms * 1e-3) / (kCopyTBs * 1e12), exps / (fb_ms * 1e-3) / 1e12,
              100 * exps / (fb_ms * 1e-3) / kExpPerSecond, floor_ms,
              bytes / (kCopyTBs * 1e12) > exps / kExpPerSecond ? "bytes bind" : "exps bind");
  std::printf("%5s B %lld S %5lld | bwd without checkpoints %8.3f ms (forward recompute included)\n", dtype,
              static_cast<long long>(B), static_cast<long long>(S), bb_ms);
}

}  // namespace

int main(int argc, char** argv) {
  if (!hymba::bench::have_gpu("bench-selective_scan")) return 1;
  if (argc == 2) {  // bench-selective_scan ROWS: bf16 at S = 2176 and that many rows only (for profilers)
    const long long rows = std::atoll(argv[1]);
    if (rows < 1 || rows > 65535) {
      std::fprintf(stderr, "bench-selective_scan: ROWS=%s is not a row count in 1..65535\n", argv[1]);
      return 2;
    }
    bench<bf16>("bf16", ScanShape{rows, 2176, 3200, 16});
    return 0;
  }
  std::printf("selective scan, B 2, E 3200, N 16; medians of 20 runs; forward saves checkpoints, backward uses "
              "them; floor = max(bytes / %.1f TB/s, exps / %.0f T/s)\n",
              kCopyTBs, kExpPerSecond / 1e12);
  for (const int64_t S : {int64_t(2176), int64_t(4 * 2176)}) {
    const ScanShape s{2, S, 3200, 16};
    bench<bf16>("bf16", s);
    bench<float>("fp32", s);
  }
  // The rows of a training micro-batch set the grid (64 channels a block): how the time grows
  // with them shows the waves.
  std::printf("\nrows, bf16, S 2176 (1.5B micro-batches of 1 to 8 rows)\n");
  for (const int64_t B : {int64_t(1), int64_t(3), int64_t(4), int64_t(6), int64_t(8)}) {
    bench<bf16>("bf16", ScanShape{B, 2176, 3200, 16});
  }
  return 0;
}
