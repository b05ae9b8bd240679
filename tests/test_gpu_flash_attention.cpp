// The flash attention kernels (bf16, hd = 64, vd = 128) against the CPU reference computed in
// double, under the bf16 tolerance rule: forward (out, lse) and backward (dq written, dk/dv
// accumulated onto random start values) on random inputs, for the global and the sliding-window +
// meta-token masks at sequence lengths that are and are not multiples of the 64-row tiles (1, 63,
// 129, 200, 300, 333, 1152, 2176, 4224), windows below and above S, M = 0, 37, 64, 128, GQA groups of 1 and 5, B = 2
// on the small cases, and v read as a column slice of a wider matrix. The dk/dv split: cases with
// one part (no reduction), with parts that do not divide a key tile's (head, query tile) pairs,
// and with empty parts (a key tile with fewer pairs than parts); checked below that the list has
// all three. Then the flash kernels against the simple GPU kernels at the Hymba-1.5B layer size
// (S 2176, 2 parts) and at S 8320 global (1 part, 1300 blocks), where a double reference is too
// slow; determinism; and the shape checks. Skipped without a GPU (the shape checks run
// everywhere: they happen before any launch).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cpu/attention.h"
#include "gpu_test.h"
#include "gpu_attention_reference.h"
#include "gradcheck.h"

#ifdef HYMBA_HAVE_CUDA
#include "core/error.h"
#include "cuda/attention.h"
#include "cuda/flash_attention.h"
#endif

namespace hymba::test {
namespace {

using cpu::AttentionShape;

#ifdef HYMBA_HAVE_CUDA

constexpr int64_t kHd = 64, kVd = 128;  // the one head shape the flash kernels take

AttentionShape global_shape(int64_t B, int64_t S, int64_t nh, int64_t nkv) {
  return {B, S, nh, nkv, kHd, kVd, /*global=*/true, /*window=*/0, /*meta=*/0};
}
AttentionShape local_shape(int64_t B, int64_t S, int64_t nh, int64_t nkv, int64_t window, int64_t meta) {
  return {B, S, nh, nkv, kHd, kVd, /*global=*/false, window, meta};
}

testing::Message describe(const AttentionShape& s, int64_t vpad) {
  return testing::Message() << "B " << s.B << " S " << s.S << " nh " << s.nh << " nkv " << s.nkv
                            << (s.global ? " global" : " local") << " W " << s.window << " M " << s.meta
                            << " vpad " << vpad;
}

struct Case {
  AttentionShape s;
  int64_t vpad;  // v's token stride is nkv·vd + vpad (a multiple of 8: rows stay 16-byte aligned)
};

// The CPU reference costs O(S · visible keys) per head, and its backward runs one thread per
// (batch, KV head): the long cases have one or a few heads.
std::vector<Case> cases() {
  return {
      {global_shape(2, 1, 5, 1), 8},                // one token: every query sees one key; GQA 5
      {local_shape(2, 63, 2, 2, 20, 0), 0},         // one partial tile; no meta tokens
      {local_shape(2, 200, 5, 1, 50, 37), 16},      // M not a multiple of the tile, W < tile
      {global_shape(2, 200, 2, 1), 8},              //
      {local_shape(1, 200, 5, 1, 500, 128), 0},     // window above S, M two whole tiles
      {local_shape(1, 300, 2, 1, 0, 5), 8},         // window 0: the diagonal and the meta tokens
      {local_shape(1, 333, 2, 2, 64, 64), 0},       // W and M at tile boundaries
      {local_shape(1, 1152, 5, 1, 256, 128), 8},    // a middle range of skipped key tiles
      {local_shape(1, 1152, 2, 2, 100, 37), 0},     //
      {global_shape(1, 1152, 2, 2), 8},             //
      {local_shape(1, 2176, 5, 5, 1024, 128), 0},   // the training layer shape, 5 heads
      {global_shape(1, 2176, 1, 1), 8},             //
      {local_shape(1, 4224, 1, 1, 1024, 128), 8},   // long: most key tiles skipped
      {global_shape(1, 4224, 1, 1), 0},             // long causal
      {global_shape(1, 129, 1, 1), 0},              // one row past a whole tile: a last tile of one row
      {local_shape(1, 333, 1, 1, 100, 0), 8},       // window edges inside a 64-row tile, no meta tokens
  };
}

// (Head, query tile) pairs the backward gives key tile kt (as the kernel's query_tiles counts).
int64_t pairs_of_key_tile(const AttentionShape& s, int64_t kt) {
  const int64_t tiles = (s.S + 63) / 64;
  int64_t last = tiles - 1;
  if (!s.global && kt * 64 >= s.meta) last = std::min(last, (kt * 64 + 63 + s.window) / 64);
  return (s.nh / s.nkv) * (last + 1 - kt);
}

std::vector<double> rounded(const std::vector<double>& v) { return bf16_round(v); }

std::vector<bf16> nan_bf16(size_t n) { return std::vector<bf16>(n, nan_of<bf16>()); }



// Device buffers of one case and the flash forward + backward on them.
struct FlashRun {
  std::vector<bf16> out, dq, dk, dv;
  std::vector<float> lse;
};

FlashRun run_flash(const AttentionShape& s, int64_t ldv, const DeviceArray<bf16>& q, const DeviceArray<bf16>& k,
              const bf16* v, const DeviceArray<bf16>& dout, const std::vector<double>& dk0,
              const std::vector<double>& dv0) {
  const int64_t no = s.B * s.S * s.nh * s.vd, nq = s.B * s.S * s.nh * s.hd, nl = s.B * s.nh * s.S;
  DeviceArray<bf16> out(nan_bf16(no)), dq(nan_bf16(nq)), dk(as<bf16>(dk0)), dv(as<bf16>(dv0));
  DeviceFloats lse(std::vector<float>(nl, std::nanf("")));
  DeviceFloats work(std::vector<float>(cuda::flash_attention_backward_workspace(s), std::nanf("")));
  cuda::flash_attention_forward<bf16>(out.data(), lse.data(), q.data(), k.data(), v, ldv, s, nullptr);
  cuda::flash_attention_backward<bf16>(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v, ldv,
                                       out.data(), lse.data(), s, work.data(), nullptr);
  return {out.to_host(), dq.to_host(), dk.to_host(), dv.to_host(), lse.to_host()};
}

// Runs the flash forward and backward of one case twice and compares every output with the
// bf16 rule, and the two runs bit for bit. q spans [-q_range, q_range].
void check_case(const Case& cs, uint64_t seed, double q_range = 2.0) {
  const AttentionShape& s = cs.s;
  ASSERT_TRUE(cuda::flash_attention_supports(s, s.nkv * s.vd + cs.vpad));
  const int64_t nq = s.B * s.S * s.nh * s.hd, nk = s.B * s.S * s.nkv * s.hd;
  const int64_t nv = s.B * s.S * s.nkv * s.vd, no = s.B * s.S * s.nh * s.vd;
  const int64_t ldv = s.nkv * s.vd + cs.vpad;

  // q spans [-2, 2] by default, so that the softmax is far from uniform.
  const std::vector<double> q = random_vector(nq, seed, q_range), k = random_vector(nk, seed + 1);
  const std::vector<double> v = random_vector(nv, seed + 2), dout = random_vector(no, seed + 3);
  const Reference exact = reference(s, q, k, v, dout, /*round_out=*/false);
  const Reference naive = reference(s, rounded(q), rounded(k), rounded(v), rounded(dout), /*round_out=*/true);

  // dk/dv accumulate onto random values of the gradients' own magnitude (exact in bf16), so that
  // both a lost `+=` and a wrong gradient show. dk is exactly 0 when every query sees a single
  // key (S = 1); its start values are then O(1).
  auto magnitude = [](const std::vector<double>& g) { return max_abs(g) > 0 ? max_abs(g) : 1.0; };
  const std::vector<double> dk0 = rounded(random_vector(nk, seed + 4, magnitude(exact.dk)));
  const std::vector<double> dv0 = rounded(random_vector(nv, seed + 5, magnitude(exact.dv)));

  DeviceArray<bf16> gq(as<bf16>(q)), gk(as<bf16>(k)), gdout(as<bf16>(dout));
  DeviceArray<bf16> gv(as<bf16>(wide_v(v, s, cs.vpad)));  // [B·S, ldv], the slice at column vpad
  const bf16* vslice = gv.data() + cs.vpad;
  const FlashRun run = run_flash(s, ldv, gq, gk, vslice, gdout, dk0, dv0);

  struct Output {
    const char* name;
    std::vector<double> gpu, exact, naive;
  };
  const Output outputs[] = {
      {"out", to_double(run.out), exact.out, naive.out},
      {"lse", to_double(run.lse), exact.lse, naive.lse},
      {"dq", to_double(run.dq), exact.dq, naive.dq},
      {"dk", to_double(run.dk), plus(dk0, exact.dk), plus(dk0, naive.dk)},
      {"dv", to_double(run.dv), plus(dv0, exact.dv), plus(dv0, naive.dv)},
  };
  for (const Output& o : outputs) {
    expect_finite(o.gpu, o.name);
    if (max_abs(o.exact) == 0) {
      // dq when every query sees a single key (S = 1): its terms P·(dout·v − D) cancel exactly,
      // so only an absolute bound means anything; the cancelling terms are O(1).
      EXPECT_LE(max_abs(o.gpu), 1e-5) << o.name;
    } else {
      expect_within_bf16_rule(o.gpu, o.exact, o.naive, o.name);
    }
  }

  // Same inputs, same bits: every sum runs in a fixed order and nothing is atomic.
  const FlashRun again = run_flash(s, ldv, gq, gk, vslice, gdout, dk0, dv0);
  EXPECT_TRUE(same_bits(again.out, run.out)) << "out differs between runs";
  EXPECT_TRUE(same_bits(again.lse, run.lse)) << "lse differs between runs";
  EXPECT_TRUE(same_bits(again.dq, run.dq)) << "dq differs between runs";
  EXPECT_TRUE(same_bits(again.dk, run.dk)) << "dk differs between runs";
  EXPECT_TRUE(same_bits(again.dv, run.dv)) << "dv differs between runs";
}

#endif  // HYMBA_HAVE_CUDA

TEST(GpuFlashAttention, WithinTheBf16RuleOfTheDoubleReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  // The cases cover the dk/dv split's boundaries: one part, parts not dividing a tile's pairs,
  // and empty parts.
  bool one = false, uneven = false, empty = false;
  for (const Case& cs : cases()) {
    const int parts = cuda::flash_attention_dkdv_parts(cs.s);
    one |= parts == 1;
    for (int64_t kt = 0; kt < (cs.s.S + 63) / 64; ++kt) {
      uneven |= parts > 1 && pairs_of_key_tile(cs.s, kt) % parts != 0;
      empty |= pairs_of_key_tile(cs.s, kt) < parts;
    }
  }
  EXPECT_TRUE(one && uneven && empty) << one << uneven << empty;
  uint64_t seed = 300;
  for (const Case& cs : cases()) {
    SCOPED_TRACE(describe(cs.s, cs.vpad));
    check_case(cs, seed += 10);
  }
#endif
}

// Scores spread over hundreds of units (q in [-32, 32]: a score's scaled log2 has a spread of ~15),
// so that a row's running max keeps growing by more than the forward's 2^8 rescale step from one
// key tile to the next, and the rescale branch runs after the first tile, not only on it. With
// q in [-2, 2] the max never moves that far.
TEST(GpuFlashAttention, LargeScoresMoveTheRunningMax) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  const Case large[] = {{local_shape(1, 1152, 2, 1, 256, 128), 0}, {global_shape(1, 1152, 2, 2), 8}};
  uint64_t seed = 700;
  for (const Case& cs : large) {
    SCOPED_TRACE(describe(cs.s, cs.vpad));
    check_case(cs, seed += 10, 32.0);
  }
#endif
}

// At the Hymba-1.5B layer size (B 2, 25 query heads in 5 KV groups, 128 meta + 2048 text tokens,
// W 1024) the double reference would take minutes, so the flash kernels are checked against the
// simple GPU kernels (cuda::attention_*<bf16>, themselves checked against the reference in
// test_gpu_attention.cpp), each path end to end (its own forward's out and lse feed its backward).
// Bound 1e-2 on max |flash − simple| / max |simple|: both read the same bf16 inputs and round
// their outputs to bf16 (up to 2^-9 ≈ 2e-3 of an element each), and flash also rounds P and dS
// to bf16 as MMA operands (2^-9 relative per term, averaging out over the sums), so the paths
// differ by a few 1e-3; a wrong key, head, tile or mask gives errors of order 0.1 to 1.
TEST(GpuFlashAttention, AgreesWithTheSimpleKernelAtThe1p5BLayerSize) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const AttentionShape& s : {local_shape(2, 2176, 25, 5, 1024, 128), global_shape(2, 2176, 25, 5),
                                  global_shape(2, 8320, 25, 5)}) {
    SCOPED_TRACE(describe(s, 0));
    const int64_t nq = s.B * s.S * s.nh * s.hd, nk = s.B * s.S * s.nkv * s.hd;
    const int64_t nv = s.B * s.S * s.nkv * s.vd, no = s.B * s.S * s.nh * s.vd, nl = s.B * s.nh * s.S;
    const int64_t ldv = s.nkv * s.vd;
    const DeviceArray<bf16> q(as<bf16>(random_vector(nq, 41, 2.0))), k(as<bf16>(random_vector(nk, 42)));
    const DeviceArray<bf16> v(as<bf16>(random_vector(nv, 43))), dout(as<bf16>(random_vector(no, 44)));
    const std::vector<double> zero_k(nk, 0.0), zero_v(nv, 0.0);

    const FlashRun flash = run_flash(s, ldv, q, k, v.data(), dout, zero_k, zero_v);

    DeviceArray<bf16> out(nan_bf16(no)), dq(nan_bf16(nq)), dk(as<bf16>(zero_k)), dv(as<bf16>(zero_v));
    DeviceFloats lse(std::vector<float>(nl, std::nanf("")));
    DeviceFloats work(std::vector<float>(cuda::attention_backward_workspace(s), std::nanf("")));
    cuda::attention_forward<bf16>(out.data(), lse.data(), q.data(), k.data(), v.data(), ldv, s, nullptr);
    cuda::attention_backward<bf16>(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), ldv,
                                   out.data(), lse.data(), s, work.data(), nullptr);

    const struct {
      const char* name;
      std::vector<double> flash, simple;
    } outputs[] = {
        {"out", to_double(flash.out), to_double(out.to_host())},
        {"lse", to_double(flash.lse), to_double(lse.to_host())},
        {"dq", to_double(flash.dq), to_double(dq.to_host())},
        {"dk", to_double(flash.dk), to_double(dk.to_host())},
        {"dv", to_double(flash.dv), to_double(dv.to_host())},
    };
    for (const auto& o : outputs) {
      expect_finite(o.flash, o.name);
      expect_finite(o.simple, o.name);
      EXPECT_LT(max_relative_error(o.flash, o.simple), 1e-2) << o.name;
    }
  }
#endif
}

// Shape and alignment checks happen on the host before any launch, and empty shapes launch
// nothing, so this runs without a GPU too.
TEST(GpuFlashAttention, RejectsUnsupportedShapesAndSkipsEmptyOnes) {
#ifdef HYMBA_HAVE_CUDA
  bf16* none = nullptr;
  float* nonef = nullptr;
  auto forward = [&](const AttentionShape& s, int64_t ldv, bf16* v = nullptr) {
    cuda::flash_attention_forward<bf16>(none, nonef, none, none, v, ldv, s, nullptr);
  };
  auto backward = [&](const AttentionShape& s, int64_t ldv) {
    cuda::flash_attention_backward<bf16>(none, none, none, none, none, none, none, ldv, none, nonef, s, nonef,
                                         nullptr);
  };
  const AttentionShape ok = local_shape(1, 4, 2, 1, 3, 1);
  EXPECT_TRUE(cuda::flash_attention_supports(ok));
  EXPECT_TRUE(cuda::flash_attention_supports(ok, 136));
  EXPECT_TRUE(cuda::flash_attention_supports(global_shape(2, 2176, 25, 5)));

  AttentionShape hd32 = ok, vd64 = ok, gqa = ok;
  hd32.hd = 32, vd64.vd = 64, gqa.nh = 3, gqa.nkv = 2;
  EXPECT_FALSE(cuda::flash_attention_supports(hd32));
  EXPECT_FALSE(cuda::flash_attention_supports(vd64));
  EXPECT_FALSE(cuda::flash_attention_supports(gqa));
  EXPECT_FALSE(cuda::flash_attention_supports(ok, 130));  // not a multiple of 8
  EXPECT_FALSE(cuda::flash_attention_supports(ok, 120));  // below nkv·vd
  EXPECT_FALSE(cuda::flash_attention_supports(local_shape(1, 4, 2, 1, -1, 0)));

  EXPECT_THROW(forward(hd32, 128), Error);
  EXPECT_THROW(backward(hd32, 128), Error);
  EXPECT_THROW(forward(vd64, 64), Error);
  EXPECT_THROW(backward(vd64, 64), Error);
  EXPECT_THROW(forward(gqa, 256), Error);
  EXPECT_THROW(backward(ok, 130), Error);
  EXPECT_THROW(forward(ok, 120), Error);
  EXPECT_THROW(backward(local_shape(1, 4, 2, 1, -1, 0), 128), Error);
  // A v slice that starts off a 16-byte boundary.
  EXPECT_THROW(forward(ok, 128, reinterpret_cast<bf16*>(uintptr_t(2))), Error);

  EXPECT_NO_THROW(forward(global_shape(1, 0, 2, 1), 128));
  EXPECT_NO_THROW(backward(local_shape(0, 9, 2, 1, 3, 1), 128));
  // Workspace: the dk/dv partials [B·nkv, tiles, parts][64, 192] when split, then D and lse·log2(e).
  for (const AttentionShape& s : {global_shape(3, 7, 5, 1), local_shape(2, 63, 2, 2, 20, 0),
                                  local_shape(2, 2176, 25, 5, 1024, 128), global_shape(2, 8320, 25, 5)}) {
    const int64_t parts = cuda::flash_attention_dkdv_parts(s), tiles = (s.S + 63) / 64;
    EXPECT_GE(parts, 1);
    EXPECT_LE(parts, 4);
    EXPECT_EQ(cuda::flash_attention_backward_workspace(s),
              (parts > 1 ? s.B * s.nkv * tiles * parts * 64 * 192 : 0) + 2 * s.B * s.nh * s.S);
  }
  EXPECT_EQ(cuda::flash_attention_dkdv_parts(local_shape(2, 2176, 25, 5, 1024, 128)), 2);  // 340 → 680 blocks
  EXPECT_EQ(cuda::flash_attention_dkdv_parts(global_shape(2, 8320, 25, 5)), 1);            // 1300 blocks already
  EXPECT_EQ(cuda::flash_attention_dkdv_parts(local_shape(2, 63, 2, 2, 20, 0)), 1);         // one pair per tile
  EXPECT_EQ(cuda::flash_attention_backward_workspace(hd32), 2 * 1 * 2 * 4);                // not taken: no split
  EXPECT_EQ(cuda::flash_attention_backward_workspace(local_shape(0, 9, 2, 1, 3, 1)), 0);
#endif
}

}  // namespace
}  // namespace hymba::test
