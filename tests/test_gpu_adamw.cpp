// The GPU optimizer kernels against the CPU optimizer (src/optim/adamw.h): the fp32 AdamW update
// over a real parameter layout for several steps (decayed and exempt tensors, a clipping factor
// below 1, changing gradients and learning rates), called per tensor and per run of tensors with
// the zero padding between them, which must stay zero; and the double sum of squares behind the
// global gradient norm, at awkward sizes, deterministic. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "config/config.h"
#include "eval_test_model.h"
#include "gpu_test.h"
#include "gradcheck.h"
#include "model/layer_plan.h"
#include "model/param_layout.h"
#include "parallel/param_shard.h"
#include "optim/adamw.h"
#include "test_util.h"

#ifdef HYMBA_HAVE_CUDA
#include "cuda/adamw.h"
#endif

namespace hymba::test {
namespace {

#ifdef HYMBA_HAVE_CUDA

// A flat buffer with random values in [-scale, scale) inside every tensor and zero padding,
// rounded to float (so the CPU in double and the GPU in fp32 start from the same numbers).
std::vector<double> tensor_values(const ParamLayout& layout, uint64_t seed, double scale) {
  const auto r = random_vector(layout.storage, seed, scale);
  std::vector<double> out(layout.storage, 0.0);
  for (const ParamTensor& t : layout.tensors) {
    for (int64_t i = t.offset; i < t.offset + t.numel; ++i) out[i] = double(float(r[i]));
  }
  return out;
}

// The elements of the flat buffer that belong to no tensor.
std::vector<int64_t> padding_indices(const ParamLayout& layout) {
  std::vector<bool> used(layout.storage, false);
  for (const ParamTensor& t : layout.tensors) std::fill_n(used.begin() + t.offset, t.numel, true);
  std::vector<int64_t> pad;
  for (int64_t i = 0; i < layout.storage; ++i)
    if (!used[i]) pad.push_back(i);
  return pad;
}

// Which tensors decay, decided as AdamW's constructor does.
std::vector<bool> decay_flags(const ParamLayout& layout, const OptimConfig& o) {
  std::vector<bool> d;
  for (const ParamTensor& t : layout.tensors) {
    const char* kind = param_kind_name(t.kind);
    d.push_back(o.weight_decay > 0 && std::find(o.no_decay.begin(), o.no_decay.end(), kind) == o.no_decay.end());
  }
  return d;
}

// A span of the flat buffer updated by one call: [offset, offset + n) with one decay choice.
struct Span {
  int64_t offset, n;
  bool decays;
};

// One span per tensor, or one per run of tensors adjacent in the buffer with the same decay (such
// a span covers the padding between its tensors). The tensors in buffer order: the segments of
// the one shard of the whole buffer.
std::vector<Span> update_spans(const ParamLayout& layout, const std::vector<bool>& decays, bool runs) {
  const std::vector<ShardSegment> segs = shard_segments(layout, shard_params(layout, 0, 1));
  std::vector<Span> spans;
  for (size_t i = 0; i < segs.size();) {
    size_t j = i + 1;
    if (runs) {
      while (j < segs.size() && decays[segs[j].tensor] == decays[segs[i].tensor]) ++j;
    }
    spans.push_back({segs[i].flat, segs[j - 1].flat + segs[j - 1].length - segs[i].flat, decays[segs[i].tensor]});
    i = j;
  }
  return spans;
}

// Runs `steps` AdamW steps on the GPU and on the CPU (AdamW<double> as the reference, AdamW<float>
// as the implementation the GPU replaces) and compares params, m and v after every step.
void check_adamw(const ParamLayout& layout, const OptimConfig& o, bool runs, int steps) {
  const std::vector<bool> decays = decay_flags(layout, o);
  ASSERT_NE(std::count(decays.begin(), decays.end(), true), 0) << "no decayed tensor to test";
  ASSERT_NE(std::count(decays.begin(), decays.end(), false), 0) << "no exempt tensor to test";
  const std::vector<Span> spans = update_spans(layout, decays, runs);
  const std::vector<int64_t> pad = padding_indices(layout);
  const int64_t n = layout.storage;

  std::vector<double> p = tensor_values(layout, 1, 0.5);  // [storage], the AdamW<double> params
  std::vector<float> pf = cast_vector<float>(p);          // [storage], the AdamW<float> params
  AdamW<double> ref(layout, o);
  AdamW<float> ref_f(layout, o);
  DeviceFloats gp(pf), gm(std::vector<float>(n, 0.0f)), gv(std::vector<float>(n, 0.0f));  // [storage]
  // [storage] the bf16 copy the update writes alongside (NaN where no span writes)
  DeviceArray<__nv_bfloat16> gp16(std::vector<__nv_bfloat16>(size_t(n), nan_of<__nv_bfloat16>()));

  const double lrs[] = {0.01, 0.03, 0.02, 0.005, 0.015, 0.025};
  const double factors[] = {0.37, 1.0, 0.6, 0.21, 0.9, 0.5};  // clipping factors, mostly < 1
  for (int t = 1; t <= steps; ++t) {
    SCOPED_TRACE(testing::Message() << "step " << t);
    const double lr = lrs[(t - 1) % 6], factor = factors[(t - 1) % 6];
    const std::vector<double> g = tensor_values(layout, 100 + t, 3.0);  // [storage]
    const std::vector<float> gf = cast_vector<float>(g);
    ref.step(p.data(), g.data(), lr, factor);
    ref_f.step(pf.data(), gf.data(), lr, factor);

    DeviceFloats gg(gf);
    cuda::AdamWStep s;
    s.lr = lr, s.beta1 = o.beta1, s.beta2 = o.beta2, s.eps = o.eps, s.grad_factor = factor;
    s.bias1 = 1.0 - std::pow(o.beta1, double(t));
    s.bias2 = 1.0 - std::pow(o.beta2, double(t));
    for (const Span& sp : spans) {
      s.decay = sp.decays ? 1.0 - lr * o.weight_decay : 1.0;
      cuda::adamw_update(gp.data() + sp.offset, gg.data() + sp.offset, gm.data() + sp.offset,
                         gv.data() + sp.offset, sp.n, s, nullptr, gp16.data() + sp.offset);
    }

    const std::vector<double> gpu_p = to_double(gp.to_host()), gpu_m = to_double(gm.to_host()),
                              gpu_v = to_double(gv.to_host());
    EXPECT_LT(max_relative_error(gpu_p, p), 1e-6) << "params against AdamW<double>";
    EXPECT_LT(max_relative_error(gpu_m, ref.first_moment()), 1e-6) << "m against AdamW<double>";
    EXPECT_LT(max_relative_error(gpu_v, ref.second_moment()), 1e-6) << "v against AdamW<double>";
    EXPECT_LT(max_relative_error(gpu_p, to_double(pf)), 1e-6) << "params against AdamW<float>";
    EXPECT_LT(max_relative_error(gpu_m, to_double(ref_f.first_moment())), 1e-6) << "m against AdamW<float>";
    EXPECT_LT(max_relative_error(gpu_v, to_double(ref_f.second_moment())), 1e-6) << "v against AdamW<float>";
    // Every element must have moved (a skipped element would still match within tolerance only
    // by luck, but its moment would be exactly zero).
    for (const ParamTensor& tt : layout.tensors) {
      for (int64_t i = tt.offset; i < tt.offset + tt.numel; ++i) {
        ASSERT_NE(gpu_v[i], 0.0) << tt.name << " element " << i - tt.offset << " was not updated";
      }
    }
    // The bf16 copy: the updated params rounded to nearest even, wherever a span wrote.
    const std::vector<__nv_bfloat16> p16 = gp16.to_host();
    for (const Span& sp : spans) {
      for (int64_t i = sp.offset; i < sp.offset + sp.n; ++i) {
        ASSERT_EQ(__bfloat162float(p16[i]), __bfloat162float(__float2bfloat16_rn(float(gpu_p[i])))) << "bf16 copy at " << i;
      }
    }
    for (int64_t i : pad) {
      ASSERT_EQ(gpu_p[i], 0.0) << "params padding at " << i;
      ASSERT_EQ(gpu_m[i], 0.0) << "m padding at " << i;
      ASSERT_EQ(gpu_v[i], 0.0) << "v padding at " << i;
    }
  }
}

ParamLayout layout_of(const ModelConfig& c) { return build_param_layout(c, plan_layers(c)); }

OptimConfig optim_config() {
  OptimConfig o;
  o.weight_decay = 0.1, o.beta1 = 0.9, o.beta2 = 0.95, o.eps = 1e-8;
  return o;
}

#endif  // HYMBA_HAVE_CUDA

TEST(GpuAdamW, MatchesTheCpuOptimizerPerTensorOverARealLayout) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  // Meta tokens on, and off (a tensor of 0 elements); an odd vocabulary so the embedding spans
  // many blocks and ends mid-block.
  for (int64_t meta : {3, 0}) {
    SCOPED_TRACE(testing::Message() << "meta tokens " << meta);
    check_adamw(layout_of(small_config(/*window=*/4, meta, /*vocab_size=*/5001)), optim_config(),
                /*runs=*/false, /*steps=*/5);
  }
#endif
}

TEST(GpuAdamW, RunsOfTensorsKeepThePaddingBetweenThemZero) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (int64_t meta : {3, 0}) {
    SCOPED_TRACE(testing::Message() << "meta tokens " << meta);
    check_adamw(layout_of(small_config(/*window=*/4, meta, /*vocab_size=*/5001)), optim_config(),
                /*runs=*/true, /*steps=*/5);
  }
  // Other hyperparameters: every kind decays but norms; a larger eps.
  OptimConfig o = optim_config();
  o.no_decay = {"norm"}, o.beta1 = 0.8, o.beta2 = 0.999, o.eps = 1e-6, o.weight_decay = 0.3;
  check_adamw(layout_of(small_config(4, 3, 97)), o, /*runs=*/true, /*steps=*/6);
#endif
}

TEST(GpuAdamW, LargeAndMisalignedTensorsCoverEveryElement) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  // More groups of four elements than one pass of the capped grid (4096 blocks × 256 threads):
  // each thread loops, then the 3 left over go one by one. Tensors that decay and that do not,
  // and one at an odd offset, which the kernel cannot load four at a time.
  ParamLayout l;
  const int64_t big = 8 * 1024 * 1024 + 3, small = 77, odd = 1001;
  const int64_t small_at = (big + 63) / 64 * 64, odd_at = small_at + 128 + 1;
  l.tensors.push_back({"w", {big}, 0, big, ParamKind::matrix, InitRule::normal, {big}, {}, {}});
  l.tensors.push_back({"n", {small}, small_at, small, ParamKind::norm, InitRule::ones, {small}, {}, {}});
  l.tensors.push_back({"u", {odd}, odd_at, odd, ParamKind::matrix, InitRule::normal, {odd}, {}, {}});
  l.count = big + small + odd;
  l.storage = odd_at + odd + 63;
  l.buckets = {{0, l.storage}};
  check_adamw(l, optim_config(), /*runs=*/false, /*steps=*/3);
#endif
}

TEST(GpuAdamW, EmptyAndInvalidCalls) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  cuda::AdamWStep s;
  s.lr = 0.01, s.bias1 = 0.1, s.bias2 = 0.05;
  cuda::adamw_update(nullptr, nullptr, nullptr, nullptr, 0, s, nullptr);  // n = 0: nothing
  HYMBA_CUDA_CHECK(cudaDeviceSynchronize());
  s.bias1 = 0;  // the step count was not advanced
  expect_error([&] { cuda::adamw_update(nullptr, nullptr, nullptr, nullptr, 0, s, nullptr); },
               {"adamw_update", "bias"});
  s.bias1 = 0.1;
  expect_error([&] { cuda::adamw_update(nullptr, nullptr, nullptr, nullptr, -1, s, nullptr); },
               {"adamw_update", "-1"});
#endif
}

TEST(GpuSumOfSquares, GivesTheGlobalGradNormOfARealLayout) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (int64_t meta : {3, 0}) {
    const ParamLayout layout = layout_of(small_config(4, meta, 5001));
    const std::vector<double> g = tensor_values(layout, 7 + meta, 2.0);  // [storage], zero padding
    const std::vector<float> gf = cast_vector<float>(g);
    DeviceFloats dg(gf);
    DeviceFloats work(std::vector<float>(cuda::sum_of_squares_workspace(layout.storage), std::nanf("")));
    const double norm = std::sqrt(cuda::sum_of_squares(dg.data(), layout.storage, work.data(), nullptr));
    // Squares of floats are exact in double, so only the summation order differs: far below 1e-6.
    EXPECT_NEAR(norm, global_grad_norm(g.data(), layout), 1e-10 * norm) << "meta " << meta;
    EXPECT_NEAR(norm, global_grad_norm(gf.data(), layout), 1e-10 * norm) << "meta " << meta;
  }
#endif
}

TEST(GpuSumOfSquares, AwkwardSizesAreExactEnoughAndDeterministic) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  // n = 0: no workspace needed, 0 returned.
  EXPECT_EQ(cuda::sum_of_squares_workspace(0), 0);
  EXPECT_EQ(cuda::sum_of_squares(nullptr, 0, nullptr, nullptr), 0.0);

  cudaStream_t stream;
  HYMBA_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (int64_t n : {int64_t(1), int64_t(31), int64_t(257), int64_t(65537), int64_t(262145),
                    int64_t(1000003), int64_t(3 * 1048576 + 5)}) {
    SCOPED_TRACE(testing::Message() << "n " << n);
    const std::vector<float> x = cast_vector<float>(random_vector(n, 11 + n, 3.0));  // [n]
    double want = 0;
    for (float xi : x) want += double(xi) * double(xi);
    DeviceFloats dx(x);
    DeviceFloats work(std::vector<float>(cuda::sum_of_squares_workspace(n), std::nanf("")));
    // On a non-default stream: the result must be there when the call returns.
    const double got = cuda::sum_of_squares(dx.data(), n, work.data(), stream);
    if (n == 1) {
      EXPECT_EQ(got, want);  // one exact square
    } else {
      EXPECT_NEAR(got, want, 1e-10 * want);
    }
    // Same input, same bits.
    EXPECT_EQ(cuda::sum_of_squares(dx.data(), n, work.data(), stream), got);
    // An unaligned start (x + 1) is fine: only the workspace must be aligned.
    if (n > 1) {
      const double tail = want - double(x[0]) * double(x[0]);
      EXPECT_NEAR(cuda::sum_of_squares(dx.data() + 1, n - 1, work.data(), stream), tail, 1e-10 * want);
    }
  }
  HYMBA_CUDA_CHECK(cudaStreamDestroy(stream));

  DeviceFloats dx(std::vector<float>(100, 1.0f)), work(std::vector<float>(cuda::sum_of_squares_workspace(100) + 1));
  EXPECT_EQ(cuda::sum_of_squares(dx.data(), 100, work.data(), nullptr), 100.0);
  expect_error([&] { cuda::sum_of_squares(dx.data(), 100, work.data() + 1, nullptr); },
               {"sum_of_squares", "aligned"});
  expect_error([&] { cuda::sum_of_squares(dx.data(), -5, work.data(), nullptr); }, {"sum_of_squares", "-5"});
#endif
}

}  // namespace
}  // namespace hymba::test
