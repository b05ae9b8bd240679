// bench-conv_silu: times the CUDA causal conv + SiLU forward and backward at the Hymba-1.5B layer
// size (batch 2, 128 meta + 2048 text tokens, E = 3200, K = 4; x and dx as column slices of the
// in_proj output, whose rows are 8960 wide), fp32 and bf16, and prints the effective bandwidth
// against the measured copy bandwidth. Bytes, each [B, S, E] tensor counted once: forward reads x
// and writes u (2); backward reads du and x and writes dx (3), plus the dw/dbias partials
// (B · ceil(S / 16) · (K + 1) · E floats, written and read once). A benchmark program,
// not a test: it checks nothing but CUDA return codes.
#include <cstdio>

#include "cuda/bench/bench_util.h"
#include "cuda/conv_silu.h"

namespace {

using namespace hymba::bench;

constexpr int64_t kB = 2, kS = 2176, kE = 3200, kK = 4;
constexpr int64_t kLd = 8960;    // in_proj's output width at 1.5B: q 1600, k 320, v 640, x, z
constexpr int64_t kXCol = 2560;  // x's first column in it

double tbs(double bytes, float ms) { return bytes / (ms * 1e-3) / 1e12; }

template <class T>
void bench(const char* dtype) {
  const int64_t n = kB * kS * kE, rows = kB * kS;
  const auto proj = device_random<T>(rows * kLd, 1), dproj = device_random<T>(rows * kLd, 2);
  const auto u = device_random<T>(n, 3), du = device_random<T>(n, 5);
  const auto w = device_random<float>(kE * kK, 6), bias = device_random<float>(kE, 7);
  const auto dw = device_random<float>(kE * kK, 8), dbias = device_random<float>(kE, 9);
  const int64_t partials = hymba::cuda::conv_silu_backward_workspace(kB, kS, kE, kK);
  const auto work = device_random<float>(partials, 10);
  auto fwd = [&] {
    hymba::cuda::conv_silu_forward<T>(u.data(), proj.data() + kXCol, kLd, w.data(), bias.data(), kB, kS, kE, kK,
                                      nullptr);
  };
  auto bwd = [&] {
    hymba::cuda::conv_silu_backward<T>(dproj.data() + kXCol, kLd, dw.data(), dbias.data(), du.data(),
                                       proj.data() + kXCol, kLd, w.data(), bias.data(), kB, kS, kE, kK, work.data(),
                                       nullptr);
  };
  const float f_ms = median_ms(fwd), b_ms = median_ms(bwd);
  const double tensor = double(n) * sizeof(T);
  const double f_tbs = tbs(2 * tensor, f_ms), b_tbs = tbs(3 * tensor + 2.0 * partials * sizeof(float), b_ms);
  std::printf("%5s  fwd %7.4f ms %5.2f TB/s (%3.0f%%)   bwd %7.4f ms %5.2f TB/s (%3.0f%%)\n", dtype, f_ms, f_tbs,
              100 * f_tbs / kCopyTBs, b_ms, b_tbs, 100 * b_tbs / kCopyTBs);
}

}  // namespace

int main() {
  if (!hymba::bench::have_gpu("bench-conv_silu")) return 1;
  std::printf("conv + SiLU, B %lld, S %lld, E %lld, K %lld, x and dx at stride %lld; medians of 50 runs; "
              "%% of the %.1f TB/s copy bandwidth\n",
              static_cast<long long>(kB), static_cast<long long>(kS), static_cast<long long>(kE),
              static_cast<long long>(kK), static_cast<long long>(kLd), kCopyTBs);
  bench<float>("fp32");
  bench<bf16>("bf16");
  return 0;
}
