// bench-attention: times the bf16 flash attention kernels (cuda/flash_attention.h) and, for
// comparison, the simple fp32-arithmetic kernels (cuda/attention.h) at the Hymba-1.5B layer size:
// batch 2, 25 query heads in 5 KV groups, hd 64, vd 128, 128 meta + 2048 text tokens (S = 2176)
// and 128 + 8192 (S = 8320), under the local mask (W = 1024, M = 128) and the global one; then the
// flash kernels alone at the shipped configs' micro-batches (local, S = 2176).
//
// FLOPs count the unmasked (query, key) pairs only, for every (batch, query head):
//   forward  = pairs · 2 · (hd + vd)                 (S = Q Kᵀ, O = P V)
//   backward = pairs · 2 · (2·hd + 2·vd + hd)        (recompute Q Kᵀ, dP = dO Vᵀ, dV = Pᵀ dO,
//                                                     dQ = dS K, dK = dSᵀ Q)
// so work a kernel does beyond that (masked halves of diagonal tiles, the flash dq kernel's second
// recompute of S and dP) is not counted. TFLOP/s are compared with the ~800 TFLOP/s measured
// ceiling of a large bf16 GEMM on the H100 (the 989 TFLOP/s dense peak is not reached by GEMMs).
// A benchmark program, not a test: it checks nothing but CUDA return codes.
#include <algorithm>
#include <array>
#include <cstdio>

#include "attention_mask.h"
#include "cuda/attention.h"
#include "cuda/bench/bench_util.h"
#include "cuda/flash_attention.h"

namespace {

using namespace hymba::bench;
using hymba::cuda::AttentionShape;

constexpr double kGemmTflops = 800.0;  // measured bf16 GEMM ceiling, TFLOP/s

// Unmasked (query, key) pairs of one (batch, head).
double pairs_per_head(const AttentionShape& s) {
  double n = 0;
  for (int64_t q = 0; q < s.S; ++q) {
    for (int64_t k = 0; k <= q; ++k) n += hymba::attention_allows(q, k, s.global, s.window, s.meta);
  }
  return n;
}

void line(const char* kernel, const AttentionShape& s, double pairs, float f_ms, float b_ms) {
  const double f_flop = pairs * 2.0 * double(s.hd + s.vd);
  const double b_flop = pairs * 2.0 * double(2 * s.hd + 2 * s.vd + s.hd);
  const double fb_ms = double(f_ms) + double(b_ms);
  auto tflops = [](double flop, double ms) { return flop / (ms * 1e-3) / 1e12; };
  std::printf("%-6s %6s S %5lld | fwd %8.3f ms %6.1f TF/s | bwd %8.3f ms %6.1f TF/s | fwd+bwd %8.3f ms %6.1f TF/s "
              "(%4.1f%% of %.0f)\n",
              kernel, s.global ? "global" : "local", static_cast<long long>(s.S), f_ms, tflops(f_flop, f_ms), b_ms,
              tflops(b_flop, b_ms), fb_ms, tflops(f_flop + b_flop, fb_ms),
              100 * tflops(f_flop + b_flop, fb_ms) / kGemmTflops, kGemmTflops);
}

void bench(const AttentionShape& s, bool with_simple = true) {
  const int64_t nq = s.B * s.S * s.nh * s.hd, nk = s.B * s.S * s.nkv * s.hd;
  const int64_t nv = s.B * s.S * s.nkv * s.vd, no = s.B * s.S * s.nh * s.vd, nl = s.B * s.nh * s.S;
  const int64_t ldv = s.nkv * s.vd;
  const auto q = device_random<bf16>(nq, 1, -2, 2), k = device_random<bf16>(nk, 2), v = device_random<bf16>(nv, 3);
  const auto dout = device_random<bf16>(no, 4), out = device_random<bf16>(no, 5);
  const auto dq = device_random<bf16>(nq, 6), dk = device_random<bf16>(nk, 7), dv = device_random<bf16>(nv, 8);
  const auto lse = device_random<float>(nl, 9);
  const int64_t work_n = std::max(hymba::cuda::flash_attention_backward_workspace(s),
                                  hymba::cuda::attention_backward_workspace(s));
  const auto work = device_random<float>(work_n, 10);
  const double pairs = pairs_per_head(s) * double(s.B * s.nh);

  auto flash_fwd = [&] {
    hymba::cuda::flash_attention_forward<bf16>(out.data(), lse.data(), q.data(), k.data(), v.data(), ldv, s, nullptr);
  };
  auto flash_bwd = [&] {
    hymba::cuda::flash_attention_backward<bf16>(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(),
                                                v.data(), ldv, out.data(), lse.data(), s, work.data(), nullptr);
  };
  flash_fwd();  // out and lse of the real forward for the backward
  const float ff = median_ms(flash_fwd), fb = median_ms(flash_bwd);
  line("flash", s, pairs, ff, fb);
  std::printf("       (flash backward: dk/dv in %d part(s), workspace %.1f MB)\n", hymba::cuda::flash_attention_dkdv_parts(s),
              4e-6 * double(hymba::cuda::flash_attention_backward_workspace(s)));

  if (!with_simple) return;
  auto simple_fwd = [&] {
    hymba::cuda::attention_forward<bf16>(out.data(), lse.data(), q.data(), k.data(), v.data(), ldv, s, nullptr);
  };
  auto simple_bwd = [&] {
    hymba::cuda::attention_backward<bf16>(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                                          ldv, out.data(), lse.data(), s, work.data(), nullptr);
  };
  simple_fwd();
  const int reps = s.S > 4096 ? 3 : 10;  // the simple kernel takes up to seconds at S = 8320
  const float sf = median_ms(simple_fwd, reps), sb = median_ms(simple_bwd, reps);
  line("simple", s, pairs, sf, sb);
}

}  // namespace

int main() {
  if (!hymba::bench::have_gpu("bench-attention")) return 1;
  std::printf("attention, bf16, B 2, nh 25, nkv 5, hd 64, vd 128, M 128 meta tokens, local W 1024; medians of "
              "50 runs (flash), 10 or 3 (simple)\n");
  std::printf("TF/s from unmasked pairs: fwd 2·(hd+vd), bwd 2·(3·hd+2·vd) FLOPs per pair; issue goal (local): "
              "fwd >= 350, fwd+bwd >= 250 TF/s\n");
  for (const int64_t S : {int64_t(128 + 2048), int64_t(128 + 8192)}) {
    for (const bool global : {false, true}) {
      bench(AttentionShape{2, S, 25, 5, 64, 128, global, global ? 0 : 1024, global ? 0 : 128});
    }
  }
  // The shipped micro-batches (local layers, S 2176): rows x (query heads, KV heads) of
  // hymba-1.5b, hymba-350m and hymba-125m. The rows set the dk/dv grid and so its parts.
  std::printf("\nflash at the shipped micro-batches (local, S 2176)\n");
  for (const auto& [rows, nh, nkv] : {std::array<int64_t, 3>{5, 25, 5}, {10, 12, 4}, {16, 8, 4}}) {
    bench(AttentionShape{rows, 128 + 2048, nh, nkv, 64, 128, false, 1024, 128}, /*with_simple=*/false);
  }
  return 0;
}
