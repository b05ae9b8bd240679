// Tensor parallelism's pieces in one process, ranks simulated by slicing (DESIGN.md §5): the
// layout shares of every rank tile the whole model and their initial values are slices of the
// whole model's; the split RMSNorm, the vocabulary-parallel cross-entropy and embedding, with
// their all-reduce / all-gather done by hand, give what the unsplit kernels give.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "config/config.h"
#include "cpu/cross_entropy.h"
#include "cpu/embedding.h"
#include "cpu/rmsnorm.h"
#include "gradcheck.h"
#include "test_util.h"
#include "model/init.h"
#include "model/dims.h"
#include "model/layer_plan.h"
#include "model/param_layout.h"

namespace hymba::test {
namespace {

ModelConfig tiny_model(int64_t vocab) {
  return load_config(std::string(HYMBA_SOURCE_DIR) + "/configs/tiny.yaml",
                     {"model.num_key_value_heads=4", "model.vocab_size=" + std::to_string(vocab)})
      .model;
}

// Each rank's share of every tensor, initialised on its own, is its slice of the whole model's
// tensor; the shares cover every element of the whole model exactly once; and the vocabulary
// padding rows (whole chunks of 64 rows: the last rank's chunk ends in them) are zero.
TEST(TensorSplit, RankSharesAreSlicesOfTheWholeModel) {
  for (const int64_t vocab : {1024, 1025}) {
    const ModelConfig c = tiny_model(vocab);
    const std::vector<LayerSpec> plan = plan_layers(c);
    const ParamLayout full = build_param_layout(c, plan);
    std::vector<float> whole(size_t(full.storage));
    init_params(whole.data(), full, c, 77);
    for (const int tp : {1, 2, 4}) {
      std::vector<float> rebuilt(whole.size(), -7.0f);
      std::vector<int> covered(whole.size(), 0);
      for (int t = 0; t < tp; ++t) {
        const ParamLayout part = build_param_layout(c, plan, /*bucket_multiple=*/3, {t, tp});
        std::vector<float> mine(size_t(part.storage)), sliced(mine.size(), 0.0f);
        init_params(mine.data(), part, c, 77);
        full_to_part(full, whole.data(), part, sliced.data());
        ASSERT_EQ(mine, sliced) << "vocab " << vocab << " rank " << t << " of " << tp;
        part_to_full(part, mine.data(), full, rebuilt.data());
        for (size_t i = 0; i < part.tensors.size(); ++i) {
          for_each_overlap(slice_runs(full.tensors[i], full.tp), slice_runs(part.tensors[i], part.tp),
                           [&](int64_t at_full, int64_t, int64_t length) {
                             for (int64_t k = 0; k < length; ++k) ++covered[size_t(full.tensors[i].offset + at_full + k)];
                           });
        }
        const ParamTensor& embed = part.tensors[0];
        const int64_t valid = vocab_range(vocab, {t, tp}).end - vocab_range(vocab, {t, tp}).begin;
        EXPECT_EQ(embed.shape[0], vocab_rows_per_rank(vocab, tp));
        EXPECT_EQ(embed.shape[0] % kVocabRowMultiple, 0);
        for (int64_t i = valid * c.hidden_size; i < embed.numel; ++i) ASSERT_EQ(mine[size_t(embed.offset + i)], 0.0f);
      }
      for (const ParamTensor& t : full.tensors) {
        int64_t held = 0;
        for (const SliceRun& r : slice_runs(t, full.tp)) {
          held += r.length;
          for (int64_t i = r.local; i < r.local + r.length; ++i) {
            const size_t at = size_t(t.offset + i);
            ASSERT_EQ(covered[at], t.split.dim < 0 ? tp : 1) << t.name << " element " << i << " tp " << tp;
            ASSERT_EQ(rebuilt[at], whole[at]) << t.name;
          }
        }
        EXPECT_EQ(held, t.full_numel()) << t.name;
      }
    }
  }
}

// x_proj's rows dt | B | C and dt_proj's columns are held padded to multiples of 8 (dims.h,
// XProjColumns), with or without tensor parallelism; the padding is zero from the start, and
// files hold the HF tensor without it.
TEST(TensorSplit, XProjAndDtProjHoldZeroPaddingBetweenTheirPieces) {
  const ModelConfig c = tiny_model(1024);  // E 128, R 4, N 16
  const std::vector<LayerSpec> plan = plan_layers(c);
  const ParamLayout full = build_param_layout(c, plan);
  const ParamTensor& x_proj = full.tensors[7];
  const ParamTensor& dt_proj = full.tensors[8];
  ASSERT_EQ(x_proj.name, "model.layers.0.mamba.x_proj.0.weight");
  ASSERT_EQ(dt_proj.name, "model.layers.0.mamba.dt_proj.0.weight");
  EXPECT_EQ(x_proj.full_shape, (std::vector<int64_t>{4 + 32, 128}));
  EXPECT_EQ(x_proj.shape, (std::vector<int64_t>{8 + 32, 128}));
  EXPECT_EQ(dt_proj.shape, (std::vector<int64_t>{128, 8}));
  const XProjColumns xc = x_proj_columns(4, 16);
  EXPECT_EQ(xc.dt_width, 8);
  EXPECT_EQ(xc.B, 8);
  EXPECT_EQ(xc.C, 24);
  EXPECT_EQ(xc.width, 40);
  // x_proj: dt's 4 rows, then B and C from row 8. dt_proj: one run of 4 per row.
  const std::vector<SliceRun> x_runs = slice_runs(x_proj, full.tp);
  ASSERT_EQ(x_runs.size(), 2u);
  EXPECT_EQ(x_runs[0].length, 4 * 128);
  EXPECT_EQ(x_runs[1].full, 4 * 128);
  EXPECT_EQ(x_runs[1].local, 8 * 128);
  EXPECT_EQ(x_runs[1].length, 32 * 128);
  const std::vector<SliceRun> dt_runs = slice_runs(dt_proj, full.tp);
  ASSERT_EQ(dt_runs.size(), 128u);
  EXPECT_EQ(dt_runs[5].full, 5 * 4);
  EXPECT_EQ(dt_runs[5].local, 5 * 8);
  EXPECT_FALSE(holds_hf_order(x_proj));
  EXPECT_TRUE(holds_hf_order(full.tensors[0]));  // the embedding: its padding rows come after it

  std::vector<float> params(size_t(full.storage));
  init_params(params.data(), full, c, 5);
  for (const ParamTensor* t : {&x_proj, &dt_proj}) {
    std::vector<float> scratch;
    const float* hf = hf_elements(*t, params.data(), scratch);
    ASSERT_EQ(int64_t(scratch.size()), t->full_numel());
    for (int64_t i = 0; i < t->full_numel(); ++i) ASSERT_NE(hf[i], 0.0f) << t->name << " " << i;  // N(0, 0.02)
    std::vector<float> round_trip(params.size(), 0.0f);
    store_hf_elements(*t, hf, round_trip.data());
    for (int64_t i = 0; i < t->numel; ++i) {
      ASSERT_EQ(round_trip[size_t(t->offset + i)], params[size_t(t->offset + i)]) << t->name << " " << i;
    }
  }
  for (int64_t col = 4; col < 8; ++col) EXPECT_EQ(params[size_t(dt_proj.offset + 3 * 8 + col)], 0.0f);
  for (int64_t e = 0; e < 128; ++e) EXPECT_EQ(params[size_t(x_proj.offset + 6 * 128 + e)], 0.0f);
  // Rank 1 of 2: half the columns of every x_proj row, half the rows of dt_proj, same padding.
  const ParamLayout part = build_param_layout(c, plan, 1, {1, 2});
  EXPECT_EQ(part.tensors[7].shape, (std::vector<int64_t>{40, 64}));
  EXPECT_EQ(part.tensors[8].shape, (std::vector<int64_t>{64, 8}));
  const std::vector<SliceRun> part_runs = slice_runs(part.tensors[7], part.tp);
  ASSERT_EQ(part_runs.size(), 36u);  // one per held row: rows do not join across the split
  EXPECT_EQ(part_runs[4].full, 4 * 128 + 64);
  EXPECT_EQ(part_runs[4].local, 8 * 64);
}

TEST(TensorSplit, InProjSharesHoldTheirHeadsOfEveryBlock) {
  const ModelConfig c = tiny_model(1024);  // H 64, 4 heads of 16, 4 KV heads, E 128 (v heads of 32)
  const ParamLayout part = build_param_layout(c, plan_layers(c), 1, {1, 2});
  const ParamTensor& in_proj = part.tensors[3];
  ASSERT_EQ(in_proj.name, "model.layers.0.mamba.in_proj.weight");
  EXPECT_EQ(in_proj.full_shape, (std::vector<int64_t>{64 + 64 + 128 + 128 + 128, 64}));
  EXPECT_EQ(in_proj.shape, (std::vector<int64_t>{(64 + 64 + 128 + 128 + 128) / 2, 64}));
  const std::vector<SliceRun> runs = slice_runs(in_proj, part.tp);  // rank 1: the second half of each block
  ASSERT_EQ(runs.size(), 5u);
  EXPECT_EQ(runs[0].full, 32 * 64);          // q rows 32..63
  EXPECT_EQ(runs[1].full, (64 + 32) * 64);   // k rows 32..63 of the k block
  EXPECT_EQ(runs[2].full, (128 + 64) * 64);  // v rows 64..127 of the v block
  EXPECT_EQ(runs[2].local, (32 + 32) * 64);
  EXPECT_EQ(runs[4].length, 64 * 64);        // z: 64 of its 128 rows
}

// The split norm over `ranks` column shares, the per-row sums added as an all-reduce would.
TEST(TensorSplit, SplitRmsNormEqualsTheWholeRowNorm) {
  const int64_t rows = 5, dim = 12, ranks = 3, share = dim / ranks;
  const auto x = random_vector(rows * dim, 1, 2.0), w = random_vector(dim, 2), dy = random_vector(rows * dim, 3);
  std::vector<double> y(rows * dim), rstd(rows), dx(rows * dim), dw(dim, 0.0);
  cpu::rmsnorm_forward(y.data(), dim, rstd.data(), x.data(), dim, w.data(), rows, dim, 1e-6);
  cpu::rmsnorm_backward(dx.data(), dim, dw.data(), dy.data(), dim, x.data(), dim, w.data(), rstd.data(), rows, dim);

  std::vector<double> sums(rows, 0.0), dots(rows, 0.0), part(rows);
  for (int64_t q = 0; q < ranks; ++q) {
    cpu::rmsnorm_sum_squares(part.data(), x.data() + q * share, dim, rows, share);
    for (int64_t r = 0; r < rows; ++r) sums[r] += part[r];
  }
  std::vector<double> y2(rows * dim), rstd2(rows), dx2(rows * dim, 0.0), dw2(dim, 0.0);
  for (int64_t q = 0; q < ranks; ++q) {
    cpu::rmsnorm_forward_from_sums(y2.data() + q * share, dim, rstd2.data(), x.data() + q * share, dim,
                                   w.data() + q * share, sums.data(), rows, share, dim, 1e-6);
    cpu::rmsnorm_backward_dots(part.data(), dy.data() + q * share, dim, x.data() + q * share, dim,
                               w.data() + q * share, rstd2.data(), rows, share);
    for (int64_t r = 0; r < rows; ++r) dots[r] += part[r];
  }
  for (int64_t q = 0; q < ranks; ++q) {
    cpu::rmsnorm_backward_from_dots(dx2.data() + q * share, dim, dw2.data() + q * share, dy.data() + q * share, dim,
                                    x.data() + q * share, dim, w.data() + q * share, rstd2.data(), dots.data(), rows,
                                    share, dim);
  }
  for (size_t i = 0; i < y.size(); ++i) {
    EXPECT_NEAR(y2[i], y[i], 1e-12);
    EXPECT_NEAR(dx2[i], dx[i], 1e-12);
  }
  for (int64_t r = 0; r < rows; ++r) EXPECT_NEAR(rstd2[r], rstd[r], 1e-12);
  for (int64_t i = 0; i < dim; ++i) EXPECT_NEAR(dw2[i], dw[i], 1e-12);
}

// Vocabulary shares of ceil(V / ranks) columns (the last short, padded), statistics gathered in
// rank order: the loss and every column's gradient equal the whole-vocabulary cross-entropy.
TEST(TensorSplit, VocabularyParallelCrossEntropyEqualsTheWholeOne) {
  const int64_t rows = 6, V = 11;
  const auto z = random_vector(rows * V, 4, 6.0);
  const std::vector<int32_t> targets = {0, 10, cpu::kIgnoreIndex, 5, 6, 3};
  std::vector<double> dz(rows * V);
  const double want = cpu::cross_entropy(dz.data(), z.data(), targets.data(), rows, V, 0.25);
  for (const int64_t ranks : {2, 3, 4}) {
    const int64_t ld = (V + ranks - 1) / ranks;
    std::vector<std::vector<double>> logits(size_t(ranks), std::vector<double>(rows * ld, 99.0));  // padding: junk
    std::vector<double> all(size_t(ranks * rows * cpu::kCrossEntropyStats));
    for (int64_t q = 0; q < ranks; ++q) {
      const cpu::VocabRange mine = split_vocab(V, ranks, q);
      for (int64_t r = 0; r < rows; ++r) {
        std::copy_n(z.data() + r * V + mine.begin, mine.end - mine.begin, logits[q].data() + r * ld);
      }
      cpu::cross_entropy_partials(all.data() + q * rows * cpu::kCrossEntropyStats, logits[q].data(), ld, mine,
                                  targets.data(), rows);
    }
    for (int64_t q = 0; q < ranks; ++q) {
      const cpu::VocabRange mine = split_vocab(V, ranks, q);
      const double got = cpu::cross_entropy_from_partials(logits[q].data(), logits[q].data(), ld, mine, all.data(),
                                                          ranks, targets.data(), rows, 0.25);
      EXPECT_NEAR(got, want, 1e-12) << ranks << " ranks";
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t v = 0; v < ld; ++v) {
          const double expect = mine.begin + v < mine.end ? dz[r * V + mine.begin + v] : 0.0;
          ASSERT_NEAR(logits[q][r * ld + v], expect, 1e-12) << "rank " << q << " row " << r << " column " << v;
        }
      }
    }
  }
}

// Each rank embeds the ids it holds (rank 0 also the memory tokens); the sum over ranks is the
// embedding, and each rank's table gradient is its rows of the whole table's gradient.
TEST(TensorSplit, VocabularyParallelEmbeddingSumsToTheWholeOne) {
  constexpr int64_t B = 2, T = 5, M = 3, H = 4, V = 7, ranks = 2, rows = 4;  // shares 4 + 3 (1 padding row)
  const auto table = random_vector(V * H, 1), meta = random_vector(M * H, 2), dx = random_vector(B * (M + T) * H, 3);
  const std::vector<int32_t> ids = {1, 6, 0, 2, 4, 3, 4, 1, 0, 5};
  std::vector<double> x(B * (M + T) * H), dtable(V * H, 0.0), dmeta(M * H, 0.0);
  cpu::embedding_forward(x.data(), ids.data(), table.data(), meta.data(), B, T, M, H, V);
  cpu::embedding_backward(dtable.data(), dmeta.data(), dx.data(), ids.data(), B, T, M, H, /*pad=*/0);
  std::vector<double> sum(x.size(), 0.0);
  for (int64_t q = 0; q < ranks; ++q) {
    const cpu::VocabRange mine = split_vocab(V, ranks, q);
    std::vector<double> share(rows * H, 0.0), dshare(rows * H, 0.0), xq(x.size()), dmeta_q(M * H, 0.0);
    std::copy(table.begin() + mine.begin * H, table.begin() + mine.end * H, share.begin());
    cpu::embedding_forward(xq.data(), ids.data(), share.data(), q == 0 ? meta.data() : nullptr, B, T, M, H, V, mine);
    for (size_t i = 0; i < x.size(); ++i) sum[i] += xq[i];
    cpu::embedding_backward(dshare.data(), dmeta_q.data(), dx.data(), ids.data(), B, T, M, H, 0, mine);
    for (int64_t i = 0; i < (mine.end - mine.begin) * H; ++i) EXPECT_EQ(dshare[i], dtable[mine.begin * H + i]);
    for (int64_t i = (mine.end - mine.begin) * H; i < rows * H; ++i) EXPECT_EQ(dshare[i], 0.0);  // padding
    EXPECT_EQ(dmeta_q, dmeta);  // replicated: every rank the whole gradient
  }
  EXPECT_EQ(sum, x);
}

}  // namespace
}  // namespace hymba::test
