// bench-gemm: times every GEMM shape of a hymba-1.5b training step through the framework's
// cuBLASLt wrapper (cuda/gemm.h, bf16 operands, fp32 accumulation), at 2 and 5 rows of
// 128 meta + 2048 text tokens (5: the shipped micro-batch), with each of train.gemm_algorithms'
// choices (cuBLASLt's first candidate; the fastest of its first 8, timed): for each linear layer
// its forward (y = x·wᵀ), its input gradient (dx = dy·w) and its weight gradient (dw += dyᵀ·x
// into fp32, as the trainer runs it; and with beta 0, which does not read dw, for comparison).
// Each figure is against the ~800 TFLOP/s the
// H100 reaches on large bf16 GEMMs. The last lines sum the step's GEMM time (each shape times
// the number of layers that run it) against the time at 800 TFLOP/s. A benchmark program, not a
// test: it checks nothing but CUDA and cuBLAS return codes.
#include <cstdio>

#include "cuda/bench/bench_util.h"
#include "cuda/gemm.h"

namespace {

using namespace hymba::bench;

constexpr double kGemmTflops = 800.0;  // large bf16 GEMMs on the H100 (measured)
constexpr int64_t kTokensPerRow = 128 + 2048, kTextPerRow = 2048;

// One linear layer y[rows, out] = x[rows, in] · w[out, in]ᵀ of the 1.5B model (HYMBA_SPEC.md),
// and how many of the 32 layers run it per step.
struct Linear {
  const char* name;
  int64_t in, out, count;
  bool text_only;  // runs on the text tokens alone (lm_head)
};

constexpr Linear kLinears[] = {
    {"in_proj (KV producers)", 1600, 8960, 17, false},  // q 1600 | k 320 | v 640 | x 3200 | z 3200
    {"in_proj (KV consumers)", 1600, 8000, 15, false},  // no k, v
    {"out_proj", 3200, 1600, 32, false},
    {"x_proj (padded)", 3200, 136, 32, false},  // dt 104 | B 16 | C 16 (model/dims.h XProjColumns)
    {"dt_proj (padded K)", 104, 3200, 32, false},
    {"gate", 1600, 5504, 32, false},
    {"up", 1600, 5504, 32, false},
    {"down", 5504, 1600, 32, false},
    {"lm_head", 1600, 32064, 1, true},  // vocabulary padded to 64 rows
};

double tflops(double flops, float ms) { return flops / (ms * 1e-3) / 1e12; }

// Prints one line per linear layer; returns the step's summed GEMM milliseconds and FLOPs.
void bench_rows(hymba::cuda::Gemm& gemm, int64_t rows_of_text, const char* algorithms) {
  double step_ms = 0, step_flops = 0;
  std::printf("\n%lld rows, %s algorithms:\n   %-36s %21s %21s %21s %10s\n", static_cast<long long>(rows_of_text),
              algorithms, "linear (in -> out)", "forward", "dx", "dw += (fp32)", "dw beta 0");
  for (const Linear& l : kLinears) {
    const int64_t rows = rows_of_text * (l.text_only ? kTextPerRow : kTokensPerRow);
    const auto x = device_random<bf16>(rows * l.in, 1), w = device_random<bf16>(l.out * l.in, 2);
    const auto dy = device_random<bf16>(rows * l.out, 3);
    auto y = device_random<bf16>(rows * l.out, 4), dx = device_random<bf16>(rows * l.in, 5);
    auto dw = device_random<float>(l.out * l.in, 6);
    const float fwd = median_ms([&] { hymba::cuda::linear_forward(gemm, y.data(), l.out, x.data(), l.in, w.data(), rows, l.in, l.out); });
    const float bwd_x = median_ms([&] {
      gemm.run<bf16, bf16>(false, false, rows, l.in, l.out, 1.0f, dy.data(), l.out, w.data(), l.in, 0.0f, dx.data(), l.in);
    });
    auto weight_grad = [&](float beta) {
      return median_ms([&] {
        gemm.run<bf16, float>(true, false, l.out, l.in, rows, 1.0f, dy.data(), l.out, x.data(), l.in, beta, dw.data(), l.in);
      });
    };
    const float bwd_w = weight_grad(1.0f), bwd_w0 = weight_grad(0.0f);
    const double flops = 2.0 * double(rows) * double(l.in) * double(l.out);
    std::printf("   %-22s %5lld -> %5lld  %7.3f ms %4.0f TF/s  %7.3f ms %4.0f TF/s  %7.3f ms %4.0f TF/s  %7.3f ms\n", l.name,
                static_cast<long long>(l.in), static_cast<long long>(l.out), fwd, tflops(flops, fwd), bwd_x,
                tflops(flops, bwd_x), bwd_w, tflops(flops, bwd_w), bwd_w0);
    step_ms += double(l.count) * (fwd + bwd_x + bwd_w);
    step_flops += double(l.count) * 3 * flops;
  }
  const double roof_ms = step_flops / (kGemmTflops * 1e12) * 1e3;
  std::printf("   step: %.1f ms of GEMMs for %.1f TFLOP (%.0f TF/s, %.0f%% of %.0f); at %.0f TFLOP/s %.1f ms\n", step_ms,
              step_flops / 1e12, tflops(step_flops, float(step_ms)), 100 * tflops(step_flops, float(step_ms)) / kGemmTflops,
              kGemmTflops, kGemmTflops, roof_ms);
}

}  // namespace

int main() {
  if (!hymba::bench::have_gpu("bench-gemm")) return 1;
  std::printf("hymba-1.5b GEMMs through cuda::Gemm (bf16 in, fp32 accumulate); medians of 50 runs; "
              "TF/s against ~%.0f\n", kGemmTflops);
  hymba::cuda::Gemm heuristic(nullptr), timed(nullptr);
  timed.set_timing(true);  // each shape's first run (a warm-up run) times the candidates
  for (int64_t rows : {2, 5}) {
    bench_rows(heuristic, rows, "heuristic");
    bench_rows(timed, rows, "timed");
  }
  return 0;
}
