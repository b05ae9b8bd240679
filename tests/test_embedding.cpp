// Embedding + meta-token prepend: layout, the padding row, and the meta-token gradient sum.
#include <gtest/gtest.h>

#include "core/error.h"
#include "cpu/embedding.h"
#include "gradcheck.h"

namespace hymba::test {
namespace {

constexpr int64_t B = 2, T = 5, M = 3, H = 4, V = 6;

TEST(Embedding, PrependsMetaTokensToEveryRow) {
  const auto table = random_vector(V * H, 1), meta = random_vector(M * H, 2);
  const std::vector<int32_t> ids = {1, 5, 0, 2, 2, 3, 4, 1, 0, 5};
  std::vector<double> x(B * (M + T) * H);
  cpu::embedding_forward(x.data(), ids.data(), table.data(), meta.data(), B, T, M, H, V);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < M + T; ++s) {
      for (int64_t h = 0; h < H; ++h) {
        const double want = s < M ? meta[s * H + h] : table[ids[b * T + s - M] * H + h];
        EXPECT_EQ(x[(b * (M + T) + s) * H + h], want);
      }
    }
  }
}

TEST(Embedding, BackwardSkipsPaddingRowAndSumsMetaOverBatch) {
  auto table = random_vector(V * H, 3), meta = random_vector(M * H, 4);
  const std::vector<int32_t> ids = {1, 5, 0, 2, 2, 3, 4, 1, 0, 5};
  const auto r = random_vector(B * (M + T) * H, 5);
  auto loss = [&] {
    std::vector<double> x(B * (M + T) * H);
    cpu::embedding_forward(x.data(), ids.data(), table.data(), meta.data(), B, T, M, H, V);
    return dot(x, r);
  };
  std::vector<double> dtable(V * H, 0.0), dmeta(M * H, 0.0);
  cpu::embedding_backward(dtable.data(), dmeta.data(), r.data(), ids.data(), B, T, M, H, /*pad=*/0);
  // Row 0 is the padding row: the lookup never trains it, although it is looked up twice.
  for (int64_t h = 0; h < H; ++h) EXPECT_EQ(dtable[h], 0.0);
  // Every other row: finite differences (exclude row 0, whose true derivative is not zero).
  std::vector<double> rows_1_up(table.begin() + H, table.end()), drows(dtable.begin() + H, dtable.end());
  auto loss_rows = [&] {
    std::copy(rows_1_up.begin(), rows_1_up.end(), table.begin() + H);
    return loss();
  };
  check_gradients({{"table[1:]", &rows_1_up, &drows}, {"meta", &meta, &dmeta}}, loss_rows);
}

TEST(Embedding, OutOfRangeIdNamesItsOffset) {
  const auto table = random_vector(V * H, 6), meta = random_vector(M * H, 7);
  std::vector<int32_t> ids(B * T, 1);
  ids[7] = V;  // row 1, position 2
  std::vector<double> x(B * (M + T) * H);
  try {
    cpu::embedding_forward(x.data(), ids.data(), table.data(), meta.data(), B, T, M, H, V);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("offset 7 (row 1, position 2)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hymba::test
