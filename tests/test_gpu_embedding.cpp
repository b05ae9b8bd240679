// The CUDA embedding (meta-token prepend) against the CPU reference computed in double, forward
// and backward, float and bf16 activations, on random ids with a frequent "hot" id (long runs of
// one table row), padding ids, and run lengths either side of the kernel's short/long split. The
// vocabulary-parallel form (each rank holds a range of the table's rows, chunks of ceil(V / ranks)
// over 2 and 3 simulated ranks, short or empty last chunks; meta on one rank) against the CPU's
// with the same ranges, and the ranks' x against the whole embedding. Skipped without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/rng.h"
#include "cpu/embedding.h"
#include "gpu_test.h"
#include "test_util.h"
#include "gradcheck.h"

#ifdef HYMBA_HAVE_CUDA
#include "cuda/embedding.h"
#endif

namespace hymba::test {
namespace {

#ifdef HYMBA_HAVE_CUDA

struct EmbeddingSize {
  int64_t B, T, M, H, V;
  int64_t pad_id;  // −1: no padding row
  double hot;      // fraction of positions given the id hot_id (a long run)
  int64_t hot_id;
};

// ids [B, T]: uniform in [0, V), a fraction `hot` replaced by hot_id, about 1 in 10 by pad_id.
std::vector<int32_t> random_ids(const EmbeddingSize& sz, uint64_t seed) {
  std::vector<int32_t> ids(sz.B * sz.T);
  for (size_t i = 0; i < ids.size(); ++i) {
    const double u = uniform01(seed, 1, i);
    if (u < sz.hot) {
      ids[i] = int32_t(sz.hot_id);
    } else if (sz.pad_id >= 0 && u > 0.9) {
      ids[i] = int32_t(sz.pad_id);
    } else {
      ids[i] = int32_t(uniform01(seed, 2, i) * double(sz.V)) % int32_t(sz.V);
    }
  }
  return ids;
}

struct EmbeddingRef {
  std::vector<double> x, dtable, dmeta;
};
EmbeddingRef embedding_reference(const std::vector<int32_t>& ids, const std::vector<double>& table,
                                 const std::vector<double>& meta, const std::vector<double>& dx,
                                 const std::vector<double>& dtable_start,
                                 const std::vector<double>& dmeta_start, const EmbeddingSize& sz) {
  EmbeddingRef r;
  r.x.assign(sz.B * (sz.M + sz.T) * sz.H, 0.0);
  r.dtable = dtable_start;
  r.dmeta = dmeta_start;
  cpu::embedding_forward(r.x.data(), ids.data(), table.data(), meta.data(), sz.B, sz.T, sz.M, sz.H, sz.V);
  cpu::embedding_backward(r.dtable.data(), r.dmeta.data(), dx.data(), ids.data(), sz.B, sz.T, sz.M,
                          sz.H, sz.pad_id);
  return r;
}

template <class T>
void check_embedding(const EmbeddingSize& sz, const std::vector<int32_t>& ids) {
  SCOPED_TRACE(testing::Message() << (std::is_same_v<T, float> ? "float" : "bf16") << " B " << sz.B
                                  << " T " << sz.T << " M " << sz.M << " H " << sz.H << " V " << sz.V
                                  << " pad " << sz.pad_id);
  const int64_t S = sz.M + sz.T, H = sz.H;
  const uint64_t seed = uint64_t(100 * sz.T + 10 * sz.H + sz.V);
  // The meta tokens and gradients are float on the GPU, the table forward reads is T: the
  // reference takes the same float values (the table rounded to T once, as the GPU's x is).
  const auto table = to_double(cast_vector<float>(random_vector(sz.V * H, seed + 1)));  // [V, H]
  const auto meta = to_double(cast_vector<float>(random_vector(sz.M * H, seed + 2)));   // [M, H]
  const auto dx = random_vector(sz.B * S * H, seed + 3);                                // [B, S, H]
  const auto dtable_start = to_double(cast_vector<float>(random_vector(sz.V * H, seed + 4)));
  const auto dmeta_start = to_double(cast_vector<float>(random_vector(sz.M * H, seed + 5)));

  const EmbeddingRef exact = embedding_reference(ids, table, meta, dx, dtable_start, dmeta_start, sz);

  // The GPU. x starts as NaN so a missed element shows; dtable and dmeta accumulate.
  DeviceArray<int32_t> gids(ids);
  DeviceArray<T> gtable(as<T>(table));
  DeviceFloats gmeta(cast_vector<float>(meta));
  DeviceArray<T> gx(std::vector<T>(sz.B * S * H, nan_of<T>())), gdx(as<T>(dx));
  DeviceFloats gdtable(cast_vector<float>(dtable_start)), gdmeta(cast_vector<float>(dmeta_start));
  DeviceArray<int32_t> work(std::vector<int32_t>(cuda::embedding_backward_workspace(sz.B, sz.T), -1));
  cuda::embedding_forward<T>(gx.data(), gids.data(), gtable.data(), gmeta.data(), sz.B, sz.T, sz.M, H, nullptr);
  cuda::embedding_backward<T>(gdtable.data(), gdmeta.data(), gdx.data(), ids.data(), sz.B, sz.T, sz.M, H,
                              sz.pad_id, work.data(), nullptr);
  const std::vector<T> x_bits = gx.to_host();
  const std::vector<float> dtable_bits = gdtable.to_host(), dmeta_bits = gdmeta.to_host();
  const std::vector<double> x = to_double(x_bits), dtable = to_double(dtable_bits),
                            dmeta = to_double(dmeta_bits);

  if constexpr (std::is_same_v<T, float>) {
    EXPECT_EQ(max_relative_error(x, exact.x), 0.0) << "x is a copy of float values";
    EXPECT_LT(max_relative_error(dtable, exact.dtable), 1e-5) << "dtable";
    EXPECT_LT(max_relative_error(dmeta, exact.dmeta), 1e-5) << "dmeta";
  } else {
    const EmbeddingRef naive =
        embedding_reference(ids, table, meta, bf16_round(dx), dtable_start, dmeta_start, sz);
    expect_within_bf16_rule(x, exact.x, naive.x, "x");
    expect_within_bf16_rule(dtable, exact.dtable, naive.dtable, "dtable");
    expect_within_bf16_rule(dmeta, exact.dmeta, naive.dmeta, "dmeta");
  }

  // Rows no position trains (the padding row, ids that do not occur) are left bit for bit alone.
  std::vector<bool> trained(sz.V, false);
  for (const int32_t id : ids) trained[id] = trained[id] || id != sz.pad_id;
  for (int64_t v = 0; v < sz.V; ++v) {
    if (trained[v]) continue;
    for (int64_t h = 0; h < H; ++h) {
      ASSERT_EQ(dtable_bits[v * H + h], float(dtable_start[v * H + h])) << "row " << v << " written";
    }
  }

  // Same inputs, same bits (the workspace still holds the last plan: it must be rewritten).
  DeviceArray<T> gx2(std::vector<T>(sz.B * S * H, nan_of<T>()));
  DeviceFloats gdtable2(cast_vector<float>(dtable_start)), gdmeta2(cast_vector<float>(dmeta_start));
  cuda::embedding_forward<T>(gx2.data(), gids.data(), gtable.data(), gmeta.data(), sz.B, sz.T, sz.M, H, nullptr);
  cuda::embedding_backward<T>(gdtable2.data(), gdmeta2.data(), gdx.data(), ids.data(), sz.B, sz.T, sz.M, H,
                              sz.pad_id, work.data(), nullptr);
  EXPECT_TRUE(same_bits(gx2.to_host(), x_bits)) << "forward is not deterministic";
  EXPECT_TRUE(same_bits(gdtable2.to_host(), dtable_bits)) << "dtable is not deterministic";
  EXPECT_TRUE(same_bits(gdmeta2.to_host(), dmeta_bits)) << "dmeta is not deterministic";
}

const EmbeddingSize kSizes[] = {
    {1, 1, 1, 1, 1, -1, 0.0, 0},
    {2, 7, 3, 33, 5, 0, 0.0, 0},          // every id repeats, padding row 0
    {1, 17, 5, 1, 3, 2, 0.0, 0},          // H = 1
    {2, 64, 0, 31, 1, -1, 0.0, 0},        // no meta tokens; one id for all 128 positions
    {3, 100, 2, 65, 50, 0, 0.5, 7},       // a hot id over ~150 positions, H over 3 column tiles
    {2, 0, 3, 5, 4, 0, 0.0, 0},           // no text: meta rows only
    {2, 333, 7, 97, 32001, 0, 0.02, 13},  // the model's vocabulary: large ids
    {2, 2048, 128, 1600, 1000, 0, 0.05, 3},  // the model's B, T, M, H
};

void check_all_sizes_and_boundary_runs(bool bf16_path) {
  for (const EmbeddingSize& sz : kSizes) {
    const auto ids = random_ids(sz, uint64_t(sz.T + sz.V));
    bf16_path ? check_embedding<bf16>(sz, ids) : check_embedding<float>(sz, ids);
  }
  // Run lengths either side of the short/long kernel split (16): id 1 takes positions 0..15,
  // id 2 positions 16..32 (crossing from batch row 0 into row 1), id 3 the rest but one, and the
  // last position is padding.
  const EmbeddingSize sz{2, 20, 2, 40, 6, 5, 0.0, 0};
  std::vector<int32_t> ids(sz.B * sz.T);
  for (int64_t p = 0; p < sz.B * sz.T; ++p) ids[p] = p < 16 ? 1 : p < 33 ? 2 : 3;
  ids.back() = int32_t(sz.pad_id);
  bf16_path ? check_embedding<bf16>(sz, ids) : check_embedding<float>(sz, ids);
}

// ---- the vocabulary-parallel embedding, ranks simulated in one process ------------------------


// The first index where a and b differ, or −1.
int64_t first_difference(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return 0;
  const auto m = std::mismatch(a.begin(), a.end(), b.begin());
  return m.first == a.end() ? -1 : int64_t(m.first - a.begin());
}

// Each rank looks up its rows of the table (rank 0 adds the meta tokens, the others pass none),
// and the ranks' x add up to the whole embedding; each rank's backward trains its rows of the
// table (and dmeta, on every rank). Against the CPU functions with the same ranges, in double.
template <class T>
void check_vocab_parallel(const EmbeddingSize& sz, const std::vector<int32_t>& ids, int64_t ranks) {
  SCOPED_TRACE(testing::Message() << (std::is_same_v<T, float> ? "float" : "bf16") << " B " << sz.B << " T "
                                  << sz.T << " M " << sz.M << " H " << sz.H << " V " << sz.V << " pad " << sz.pad_id
                                  << ", " << ranks << " ranks");
  const int64_t S = sz.M + sz.T, H = sz.H, xsize = sz.B * S * H;
  const uint64_t seed = uint64_t(100 * sz.T + 10 * sz.H + sz.V);
  const auto table = to_double(cast_vector<float>(random_vector(sz.V * H, seed + 1)));  // [V, H]
  const auto meta = to_double(cast_vector<float>(random_vector(sz.M * H, seed + 2)));   // [M, H]
  const auto dx = random_vector(xsize, seed + 3);                                       // [B, S, H]
  const auto dtable_start = to_double(cast_vector<float>(random_vector(sz.V * H, seed + 4)));
  const auto dmeta_start = to_double(cast_vector<float>(random_vector(sz.M * H, seed + 5)));

  // The whole embedding, and the sum of the ranks' x (each element comes from one rank: exact).
  std::vector<double> whole(xsize), sum(xsize, 0.0);  // [B, S, H]
  cpu::embedding_forward(whole.data(), ids.data(), table.data(), meta.data(), sz.B, sz.T, sz.M, H, sz.V);

  DeviceArray<int32_t> gids(ids);
  DeviceArray<T> gdx(as<T>(dx));
  DeviceArray<int32_t> work(std::vector<int32_t>(cuda::embedding_backward_workspace(sz.B, sz.T), -1));
  for (int64_t q = 0; q < ranks; ++q) {
    const cpu::VocabRange vocab = split_vocab(sz.V, ranks, q);
    const int64_t rows = vocab.end - vocab.begin;
    const std::vector<double> part(table.begin() + vocab.begin * H, table.begin() + vocab.end * H);  // [rows, H]
    const std::vector<double> dpart_start(dtable_start.begin() + vocab.begin * H,
                                          dtable_start.begin() + vocab.end * H);  // [rows, H]
    const double* rank_meta = q == 0 ? meta.data() : nullptr;

    std::vector<double> x(xsize);  // [B, S, H]
    cpu::embedding_forward(x.data(), ids.data(), part.data(), rank_meta, sz.B, sz.T, sz.M, H, sz.V, vocab);
    std::vector<double> dpart = dpart_start, dmeta = dmeta_start;
    cpu::embedding_backward(dpart.data(), dmeta.data(), dx.data(), ids.data(), sz.B, sz.T, sz.M, H, sz.pad_id, vocab);

    DeviceArray<T> gpart(as<T>(part));
    DeviceFloats gmeta(cast_vector<float>(meta));
    DeviceArray<T> gx(std::vector<T>(xsize, nan_of<T>()));
    DeviceFloats gdpart(cast_vector<float>(dpart_start)), gdmeta(cast_vector<float>(dmeta_start));
    cuda::embedding_forward<T>(gx.data(), gids.data(), gpart.data(), q == 0 ? gmeta.data() : nullptr, sz.B, sz.T, sz.M,
                               H, nullptr, vocab);
    cuda::embedding_backward<T>(gdpart.data(), gdmeta.data(), gdx.data(), ids.data(), sz.B, sz.T, sz.M, H, sz.pad_id,
                                work.data(), nullptr, vocab);
    const std::vector<double> gpu_x = to_double(gx.to_host());
    const std::vector<float> dpart_bits = gdpart.to_host();
    const std::vector<double> gpu_dpart = to_double(dpart_bits), gpu_dmeta = to_double(gdmeta.to_host());

    // x is a copy of float values (zeros elsewhere), rounded once to T.
    EXPECT_EQ(first_difference(gpu_x, std::is_same_v<T, float> ? x : bf16_round(x)), -1) << "x of rank " << q;
    for (int64_t i = 0; i < xsize; ++i) sum[i] += gpu_x[i];
    if constexpr (std::is_same_v<T, float>) {
      EXPECT_LT(max_relative_error(gpu_dpart, dpart), 1e-5) << "dtable of rank " << q;
      EXPECT_LT(max_relative_error(gpu_dmeta, dmeta), 1e-5) << "dmeta of rank " << q;
    } else {
      std::vector<double> naive_dpart = dpart_start, naive_dmeta = dmeta_start;
      cpu::embedding_backward(naive_dpart.data(), naive_dmeta.data(), bf16_round(dx).data(), ids.data(), sz.B, sz.T,
                              sz.M, H, sz.pad_id, vocab);
      expect_within_bf16_rule(gpu_dpart, dpart, naive_dpart, "dtable", Stored::fp32);
      expect_within_bf16_rule(gpu_dmeta, dmeta, naive_dmeta, "dmeta", Stored::fp32);
    }
    // Rows of this rank no position trains (padding, ids that do not occur) keep their bits.
    std::vector<bool> trained(size_t(rows), false);
    for (const int32_t id : ids) {
      if (vocab.holds(id) && id != sz.pad_id) trained[size_t(id - vocab.begin)] = true;
    }
    for (int64_t v = 0; v < rows; ++v) {
      if (trained[v]) continue;
      for (int64_t h = 0; h < H; ++h) {
        ASSERT_EQ(dpart_bits[v * H + h], float(dpart_start[v * H + h])) << "row " << v << " of rank " << q << " written";
      }
    }
  }
  EXPECT_EQ(first_difference(sum, std::is_same_v<T, float> ? whole : bf16_round(whole)), -1)
      << "the ranks' x do not add up to the embedding";
}

void check_vocab_parallel_all_sizes(bool bf16_path) {
  for (const EmbeddingSize& sz : kSizes) {
    const auto ids = random_ids(sz, uint64_t(sz.T + sz.V));
    for (const int64_t ranks : {2, 3}) {
      bf16_path ? check_vocab_parallel<bf16>(sz, ids, ranks) : check_vocab_parallel<float>(sz, ids, ranks);
    }
  }
}

#endif  // HYMBA_HAVE_CUDA

TEST(GpuEmbedding, FloatMatchesTheCpuReference) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_all_sizes_and_boundary_runs(false);
#endif
}

TEST(GpuEmbedding, Bf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_all_sizes_and_boundary_runs(true);
#endif
}

TEST(GpuEmbedding, VocabParallelAddsUpToTheWholeTable) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_vocab_parallel_all_sizes(false);
#endif
}

TEST(GpuEmbedding, VocabParallelBf16WithinTheBf16Rule) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  check_vocab_parallel_all_sizes(true);
#endif
}

TEST(GpuEmbedding, EmptyBatchWritesNothing) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  DeviceFloats buf(std::vector<float>(8, 1.0f));
  DeviceArray<int32_t> work(std::vector<int32_t>(1, 0));
  const int32_t ids[1] = {0};
  cuda::embedding_forward<float>(buf.data(), work.data(), buf.data(), buf.data(), 0, 3, 2, 2, nullptr);
  cuda::embedding_backward<float>(buf.data(), buf.data(), buf.data(), ids, 0, 3, 2, 2, 0, work.data(), nullptr);
  EXPECT_EQ(buf.to_host(), std::vector<float>(8, 1.0f));
#endif
}

}  // namespace
}  // namespace hymba::test
