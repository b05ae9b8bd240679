// The CUDA fused softmax + cross-entropy against the CPU reference computed in double: the loss
// and dlogits, float and bf16 logits, written to a separate buffer, in place over the logits (as
// the model does) and not at all (dlogits null), with rows whose target is ignored. The
// vocabulary-parallel pair over 1, 2 and 3 simulated ranks (chunks of ceil(V / ranks): a short
// or empty last chunk, padding columns) gives the whole vocabulary's loss and gradient; its
// partials match the CPU's. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "cpu/cross_entropy.h"
#include "gpu_test.h"
#include "test_util.h"
#include "gradcheck.h"

#ifdef HYMBA_HAVE_CUDA
#include "cuda/cross_entropy.h"
#endif

namespace hymba::test {
namespace {

#ifdef HYMBA_HAVE_CUDA

struct CeSize {
  int64_t rows, V;
  double ignored;  // fraction of rows whose target is kIgnoreIndex
};

// One test case: random logits and targets (a fraction ignored), and the CPU reference in double.
struct CeCase {
  std::vector<double> logits;    // [rows, V]
  std::vector<int32_t> targets;  // [rows]
  double grad_scale;             // 1 / the counted targets
  std::vector<double> dlogits;   // [rows, V] the reference gradient
  double loss;                   // the reference summed loss
};

CeCase make_case(const CeSize& sz) {
  const int64_t rows = sz.rows, V = sz.V;
  const uint64_t seed = uint64_t(rows * 7 + V);
  CeCase c;
  c.logits = random_vector(rows * V, seed, 4.0);
  c.targets.resize(rows);
  int64_t counted = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const bool ignore = uniform01(seed, 1, r) < sz.ignored;
    c.targets[r] = ignore ? cpu::kIgnoreIndex : int32_t(uniform01(seed, 2, r) * double(V)) % int32_t(V);
    counted += ignore ? 0 : 1;
  }
  c.grad_scale = 1.0 / double(std::max<int64_t>(counted, 1));
  c.dlogits.resize(rows * V);
  c.loss = cpu::cross_entropy(c.dlogits.data(), c.logits.data(), c.targets.data(), rows, V, c.grad_scale);
  return c;
}

template <class T>
void check_cross_entropy(const CeSize& sz) {
  SCOPED_TRACE(testing::Message() << (std::is_same_v<T, float> ? "float" : "bf16") << " rows "
                                  << sz.rows << " V " << sz.V << " ignored " << sz.ignored);
  const int64_t rows = sz.rows, V = sz.V;
  const CeCase c = make_case(sz);
  const auto& [logits, targets, grad_scale, dlogits, loss] = c;

  // The GPU, three ways: a separate dlogits (NaN where it must write), in place, and none.
  DeviceArray<int32_t> gtargets(targets);
  DeviceArray<T> glogits(as<T>(logits));
  DeviceArray<T> gdlogits(std::vector<T>(rows * V, nan_of<T>()));
  DeviceFloats work(std::vector<float>(cuda::cross_entropy_workspace(rows), std::nanf("")));
  const double gpu_loss = cuda::cross_entropy<T>(gdlogits.data(), glogits.data(), gtargets.data(), rows, V,
                                                 grad_scale, work.data(), nullptr);
  const std::vector<T> dz_bits = gdlogits.to_host();
  const std::vector<double> dz = to_double(dz_bits);

  if constexpr (std::is_same_v<T, float>) {
    EXPECT_LT(max_relative_error({gpu_loss}, {loss}), 1e-5) << "loss " << gpu_loss << " vs " << loss;
    EXPECT_LT(max_relative_error(dz, dlogits), 1e-5) << "dlogits";
  } else {
    const auto rounded = bf16_round(logits);
    std::vector<double> naive_dz(rows * V);
    const double naive_loss =
        cpu::cross_entropy(naive_dz.data(), rounded.data(), targets.data(), rows, V, grad_scale);
    expect_within_bf16_rule({gpu_loss}, {loss}, {naive_loss}, "loss");
    expect_within_bf16_rule(dz, dlogits, naive_dz, "dlogits");
  }

  // Same inputs, same bits.
  DeviceArray<T> gdlogits2(std::vector<T>(rows * V, nan_of<T>()));
  const double gpu_loss2 = cuda::cross_entropy<T>(gdlogits2.data(), glogits.data(), gtargets.data(), rows,
                                                  V, grad_scale, work.data(), nullptr);
  EXPECT_EQ(gpu_loss2, gpu_loss) << "loss is not deterministic";
  EXPECT_TRUE(same_bits(gdlogits2.to_host(), dz_bits)) << "dlogits is not deterministic";

  // In place over the logits, as the model calls it: the same loss and gradient bits.
  DeviceArray<T> ginplace(as<T>(logits));
  const double inplace_loss = cuda::cross_entropy<T>(ginplace.data(), ginplace.data(), gtargets.data(), rows,
                                                     V, grad_scale, work.data(), nullptr);
  EXPECT_EQ(inplace_loss, gpu_loss) << "in-place loss differs";
  EXPECT_TRUE(same_bits(ginplace.to_host(), dz_bits)) << "in-place dlogits differs";

  // No gradient: the same loss, the logits untouched.
  const double loss_only = cuda::cross_entropy<T>(nullptr, glogits.data(), gtargets.data(), rows, V,
                                                  grad_scale, work.data(), nullptr);
  EXPECT_EQ(loss_only, gpu_loss) << "loss without dlogits differs";
  EXPECT_TRUE(same_bits(glogits.to_host(), as<T>(logits))) << "logits were written";
}

const CeSize kSizes[] = {
    {1, 1, 0.0},    {5, 1, 0.2},     {3, 7, 0.2},     {33, 7, 0.3},    {6, 7, 1.0},  // all ignored
    {64, 1000, 0.2}, {300, 1000, 0.1}, {9, 1003, 0.1}, {4, 32001, 0.0}, {67, 32001, 0.2},
};

// ---- vocabulary-parallel cross-entropy, ranks simulated in one process -----------------------

// A value no padding column may leak into the loss: larger than any logit.
constexpr double kPadding = 50.0;

// Rows of stride ld = ceil(V / ranks) rounded up to a multiple of `pad` (the model pads its
// vocabulary to 64: rows of whole 16-byte packs with a short last one).
template <class T>
void check_vocab_parallel(const CeSize& sz, int64_t ranks, int64_t pad) {
  SCOPED_TRACE(testing::Message() << (std::is_same_v<T, float> ? "float" : "bf16") << " rows " << sz.rows << " V "
                                  << sz.V << " ignored " << sz.ignored << ", " << ranks << " ranks, stride a multiple of "
                                  << pad);
  const int64_t rows = sz.rows, V = sz.V, ld = ((V + ranks - 1) / ranks + pad - 1) / pad * pad;
  const CeCase c = make_case(sz);
  const auto& [logits, targets, grad_scale, dlogits, loss] = c;
  const std::vector<double> seen = to_double(as<T>(logits));  // [rows, V]: the logits the kernels see

  // Rank q's logits: its columns of the whole, then padding to the stride ld.
  std::vector<std::vector<double>> part(ranks);  // per rank [rows, ld]
  for (int64_t q = 0; q < ranks; ++q) {
    const cpu::VocabRange vocab = split_vocab(V, ranks, q);
    part[q].assign(rows * ld, kPadding);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t v = vocab.begin; v < vocab.end; ++v) part[q][r * ld + v - vocab.begin] = logits[r * V + v];
  }

  // Partials on every rank, then an all-gather into all [ranks, rows, 3].
  DeviceArray<int32_t> gtargets(targets);
  const int64_t stats_size = rows * cuda::kCrossEntropyStats;
  DeviceFloats all(std::vector<float>(ranks * stats_size, std::nanf("")));
  std::vector<DeviceArray<T>> glogits;
  for (int64_t q = 0; q < ranks; ++q) {
    const cpu::VocabRange vocab = split_vocab(V, ranks, q);
    glogits.emplace_back(as<T>(part[q]));
    DeviceFloats stats(std::vector<float>(stats_size, std::nanf("")));
    cuda::cross_entropy_partials<T>(stats.data(), glogits[q].data(), ld, vocab, gtargets.data(), rows, nullptr);
    const std::vector<float> got = stats.to_host();
    // Against the CPU partials on the logits the kernel saw: the max and the target's logit are
    // values of the row (exact), the sum an fp32 sum.
    std::vector<double> ref(stats_size);  // [rows, 3]
    cpu::cross_entropy_partials(ref.data(), seen.data() + vocab.begin, V, vocab, targets.data(), rows);
    double sum_err = 0;  // relative to the row's sum, which is at least 1 (the max's term) if not 0
    for (int64_t r = 0; r < rows; ++r) {
      const float* g = got.data() + r * cuda::kCrossEntropyStats;
      const double* e = ref.data() + r * cuda::kCrossEntropyStats;
      ASSERT_EQ(double(g[0]), e[0]) << "max of row " << r << " on rank " << q;
      ASSERT_EQ(double(g[2]), e[2]) << "target logit of row " << r << " on rank " << q;
      sum_err = std::max(sum_err, std::abs(double(g[1]) - e[1]) / std::max(e[1], 1.0));
    }
    EXPECT_LT(sum_err, 1e-5) << "Σ exp on rank " << q;
    HYMBA_CUDA_CHECK(cudaMemcpy(all.data() + q * stats_size, stats.data(), stats_size * sizeof(float),
                                cudaMemcpyDeviceToDevice));
  }

  // Every rank finishes the loss and its columns of the gradient: three ways, as the plain
  // cross_entropy test runs it (a separate dlogits starting NaN, in place, none).
  DeviceFloats work(std::vector<float>(cuda::cross_entropy_workspace(rows), std::nanf("")));
  std::vector<double> dz(rows * V);  // [rows, V]: the ranks' columns put together
  double gpu_loss = 0;
  for (int64_t q = 0; q < ranks; ++q) {
    const cpu::VocabRange vocab = split_vocab(V, ranks, q);
    DeviceArray<T> gdz(std::vector<T>(rows * ld, nan_of<T>()));
    const double rank_loss = cuda::cross_entropy_from_partials<T>(gdz.data(), glogits[q].data(), ld, vocab, all.data(),
                                                                  ranks, gtargets.data(), rows, grad_scale, work.data(),
                                                                  nullptr);
    if (q == 0) gpu_loss = rank_loss;
    EXPECT_EQ(rank_loss, gpu_loss) << "the loss of rank " << q << " differs from rank 0's";
    const std::vector<T> dz_bits = gdz.to_host();
    const std::vector<double> dz_rank = to_double(dz_bits);  // [rows, ld]
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t v = 0; v < ld; ++v) {
        const double d = dz_rank[r * ld + v];
        if (v < vocab.end - vocab.begin) {
          dz[r * V + vocab.begin + v] = d;
        } else {
          ASSERT_EQ(d, 0.0) << "padding column " << v << " of row " << r << " on rank " << q;
        }
      }
    }
    DeviceArray<T> inplace(as<T>(part[q]));
    const double inplace_loss = cuda::cross_entropy_from_partials<T>(inplace.data(), inplace.data(), ld, vocab,
                                                                     all.data(), ranks, gtargets.data(), rows,
                                                                     grad_scale, work.data(), nullptr);
    EXPECT_EQ(inplace_loss, gpu_loss) << "in-place loss differs on rank " << q;
    EXPECT_TRUE(same_bits(inplace.to_host(), dz_bits)) << "in-place dlogits differs on rank " << q;
    const double loss_only = cuda::cross_entropy_from_partials<T>(nullptr, glogits[q].data(), ld, vocab, all.data(),
                                                                  ranks, gtargets.data(), rows, grad_scale,
                                                                  work.data(), nullptr);
    EXPECT_EQ(loss_only, gpu_loss) << "loss without dlogits differs on rank " << q;
    EXPECT_TRUE(same_bits(glogits[q].to_host(), as<T>(part[q]))) << "logits were written on rank " << q;
  }

  // The whole: the plain cross_entropy's loss and gradient (CPU reference, double).
  if constexpr (std::is_same_v<T, float>) {
    EXPECT_LT(max_relative_error({gpu_loss}, {loss}), 1e-5) << "loss " << gpu_loss << " vs " << loss;
    EXPECT_LT(max_relative_error(dz, dlogits), 1e-5) << "dlogits";
  } else {
    std::vector<double> naive_dz(rows * V);
    const double naive_loss = cpu::cross_entropy(naive_dz.data(), seen.data(), targets.data(), rows, V, grad_scale);
    expect_within_bf16_rule({gpu_loss}, {loss}, {naive_loss}, "loss");
    expect_within_bf16_rule(dz, dlogits, naive_dz, "dlogits");
  }

  // One rank holding every id is the plain kernel, bit for bit.
  if (ranks == 1 && ld == V) {
    DeviceArray<T> whole_dz(std::vector<T>(rows * V, nan_of<T>()));
    const double whole_loss = cuda::cross_entropy<T>(whole_dz.data(), glogits[0].data(), gtargets.data(), rows, V,
                                                     grad_scale, work.data(), nullptr);
    DeviceArray<T> split_dz(std::vector<T>(rows * V, nan_of<T>()));
    const double split_loss = cuda::cross_entropy_from_partials<T>(split_dz.data(), glogits[0].data(), V,
                                                                   split_vocab(V, 1, 0), all.data(), 1, gtargets.data(),
                                                                   rows, grad_scale, work.data(), nullptr);
    EXPECT_EQ(split_loss, whole_loss) << "one rank's loss differs from cross_entropy's";
    EXPECT_TRUE(same_bits(split_dz.to_host(), whole_dz.to_host())) << "one rank's dlogits differ from cross_entropy's";
  }
}

template <class T>
void check_vocab_parallel_all_sizes() {
  for (const CeSize& sz : kSizes) {
    for (const int64_t ranks : {1, 2, 3}) {
      for (const int64_t pad : {1, 64}) check_vocab_parallel<T>(sz, ranks, pad);
    }
  }
}

#endif  // HYMBA_HAVE_CUDA

TEST(GpuCrossEntropy, FloatMatchesTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const CeSize& sz : kSizes) check_cross_entropy<float>(sz);
#endif
}

TEST(GpuCrossEntropy, Bf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const CeSize& sz : kSizes) check_cross_entropy<bf16>(sz);
#endif
}

TEST(GpuCrossEntropy, VocabParallelMatchesTheWholeVocabulary) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_vocab_parallel_all_sizes<float>();
#endif
}

TEST(GpuCrossEntropy, VocabParallelBf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_vocab_parallel_all_sizes<bf16>();
#endif
}

TEST(GpuCrossEntropy, NoRowsIsZeroLoss) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  DeviceFloats buf(std::vector<float>(4, 1.0f));
  DeviceArray<int32_t> targets(std::vector<int32_t>(1, 0));
  EXPECT_EQ(cuda::cross_entropy<float>(buf.data(), buf.data(), targets.data(), 0, 4, 1.0, buf.data(), nullptr), 0.0);
  EXPECT_EQ(buf.to_host(), std::vector<float>(4, 1.0f));
  const cpu::VocabRange vocab{2, 6};
  cuda::cross_entropy_partials<float>(buf.data(), buf.data(), 4, vocab, targets.data(), 0, nullptr);
  EXPECT_EQ(cuda::cross_entropy_from_partials<float>(buf.data(), buf.data(), 4, vocab, buf.data(), 2, targets.data(), 0,
                                                     1.0, buf.data(), nullptr),
            0.0);
  EXPECT_EQ(buf.to_host(), std::vector<float>(4, 1.0f));
#endif
}

TEST(GpuCrossEntropy, VocabParallelChecksItsRangeAndRanks) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  // A range wider than the row stride, the default (unbounded) range, a reversed one, no ranks.
  EXPECT_THROW(cuda::cross_entropy_partials<float>(nullptr, nullptr, 4, cpu::VocabRange{0, 5}, nullptr, 1, nullptr),
               Error);
  EXPECT_THROW(cuda::cross_entropy_partials<bf16>(nullptr, nullptr, 4, cpu::VocabRange{}, nullptr, 1, nullptr), Error);
  EXPECT_THROW(cuda::cross_entropy_from_partials<float>(nullptr, nullptr, 4, cpu::VocabRange{3, 2}, nullptr, 1, nullptr,
                                                        1, 1.0, nullptr, nullptr),
               Error);
  EXPECT_THROW(cuda::cross_entropy_from_partials<float>(nullptr, nullptr, 4, cpu::VocabRange{0, 4}, nullptr, 0, nullptr,
                                                        1, 1.0, nullptr, nullptr),
               Error);
#endif
}

}  // namespace
}  // namespace hymba::test
