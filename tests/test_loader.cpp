// The data loader: rows cover every row once per epoch across ranks, a deterministic order per
// (seed, epoch), exact resume from the cursor, row contents, document starts, errors from the
// background thread, refusals; the host buffers it fills; and find_shards.
//
// Most tests use shards whose token at position i of shard s is s·kBase + i, so a row's first id
// tells which row it is and every other id of the row can be checked against it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "tests/test_util.h"
#include "core/host_memory.h"
#include "core/rng.h"
#include "data/hdf5_lock.h"
#include "data/loader.h"
#include "data/shard.h"

namespace hymba::test {
namespace {

namespace fs = std::filesystem;

constexpr int64_t T = 8;
constexpr int32_t kBase = 1000;
constexpr int64_t kVocab = 4000;
// Tokens per shard: 10, 7 (plus 5 left over) and 19 rows, and one shard too short for a row.
const std::vector<int64_t> kShardTokens = {10 * T + 1, 7 * T + 1 + 5, 19 * T + 1, T};
constexpr int64_t kRows = 36;

class LoaderTest : public TempDirTest {
 protected:

  // Shards s0.h5 .. s3.h5 of kShardTokens, token i of shard s = s·kBase + i; documents every 13
  // tokens. Listed in reverse, since the loader must sort them itself.
  LoaderOptions numbered_shards(const std::string& tokenizer = "feedfeedfeedfeed") const {
    LoaderOptions o;
    for (size_t s = 0; s < kShardTokens.size(); ++s) {
      std::vector<int32_t> tokens;
      for (int64_t i = 0; i < kShardTokens[s]; ++i) {
        tokens.push_back(static_cast<int32_t>(s * kBase + i));
      }
      std::vector<int64_t> docs;
      for (int64_t at = 0; at < kShardTokens[s]; at += 13) docs.push_back(at);
      docs.push_back(kShardTokens[s]);
      ShardInfo info;
      info.vocab_size = kVocab;
      info.tokenizer = tokenizer;
      info.split = "train";
      const std::string p = path("s" + std::to_string(s) + ".h5");
      write_shard(p, tokens, docs, info);
      o.shards.insert(o.shards.begin(), p);
    }
    o.seq_len = T;
    o.seed = 42;
    return o;
  }
};

// The first ids of each row of every batch, after checking each row is a run of consecutive
// tokens of one shard with targets shifted by one.
std::vector<int32_t> row_starts(DataLoader& loader, int64_t B, int batches) {
  std::vector<int32_t> starts;
  for (int k = 0; k < batches; ++k) {
    const Batch& batch = loader.next();
    for (int64_t b = 0; b < B; ++b) {
      const int32_t first = batch.ids[b * T];
      EXPECT_EQ(first % kBase % T, 0) << "row start " << first;
      for (int64_t t = 0; t < T; ++t) {
        EXPECT_EQ(batch.ids[b * T + t], first + t);
        EXPECT_EQ(batch.targets[b * T + t], first + t + 1);
      }
      starts.push_back(first);
    }
  }
  return starts;
}

std::vector<int32_t> all_row_starts() {
  std::vector<int32_t> starts;
  for (size_t s = 0; s < kShardTokens.size(); ++s) {
    for (int64_t r = 0; r < (kShardTokens[s] - 1) / T; ++r) {
      starts.push_back(static_cast<int32_t>(s * kBase + r * T));
    }
  }
  return starts;
}

std::vector<int32_t> sorted(std::vector<int32_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// W ranks over one epoch: together they read every row exactly once.
void expect_ranks_cover_an_epoch(const LoaderOptions& base, int W, int64_t B) {
  ASSERT_EQ(kRows % (W * B), 0);
  std::vector<int32_t> seen;
  for (int r = 0; r < W; ++r) {
    LoaderOptions o = base;
    o.world = W;
    o.rank = r;
    o.batch_size = B;
    DataLoader loader(o);
    EXPECT_EQ(loader.rows_per_epoch(), kRows);
    const std::vector<int32_t> mine = row_starts(loader, B, static_cast<int>(kRows / (W * B)));
    seen.insert(seen.end(), mine.begin(), mine.end());
  }
  EXPECT_EQ(sorted(seen), all_row_starts());  // sorted: a row seen twice would show
}

TEST_F(LoaderTest, TwoRanksReadEveryRowOnceAnEpoch) {
  expect_ranks_cover_an_epoch(numbered_shards(), 2, 3);
}

TEST_F(LoaderTest, ThreeRanksReadEveryRowOnceAnEpoch) {
  expect_ranks_cover_an_epoch(numbered_shards(), 3, 4);
}

TEST_F(LoaderTest, CountsRowsAndTokens) {
  LoaderOptions o = numbered_shards();
  o.batch_size = 1;
  const DataLoader loader(o);
  EXPECT_EQ(loader.rows_per_epoch(), kRows);
  EXPECT_EQ(loader.tokens(), 81 + 62 + 153 + 8);
}

// Rank r's batch k is the r-th slice of what one rank with W·B rows reads at step k, so the order
// does not depend on the rank split. 8 steps of 6 rows cross into the second epoch.
TEST_F(LoaderTest, RanksTakeConsecutiveSlicesOfOneStream) {
  LoaderOptions o = numbered_shards();
  o.batch_size = 6;
  DataLoader whole(o);
  const std::vector<int32_t> stream = row_starts(whole, 6, 8);
  for (int r = 0; r < 3; ++r) {
    LoaderOptions part = o;
    part.world = 3;
    part.rank = r;
    part.batch_size = 2;
    DataLoader loader(part);
    const std::vector<int32_t> mine = row_starts(loader, 2, 8);
    for (int k = 0; k < 8; ++k) {
      EXPECT_EQ(mine[2 * k], stream[6 * k + 2 * r]) << "step " << k << " rank " << r;
      EXPECT_EQ(mine[2 * k + 1], stream[6 * k + 2 * r + 1]) << "step " << k << " rank " << r;
    }
  }
}

TEST_F(LoaderTest, OrderIsAFunctionOfTheSeed) {
  LoaderOptions o = numbered_shards();
  o.batch_size = 4;
  DataLoader a(o), b(o);
  const std::vector<int32_t> first = row_starts(a, 4, 9);
  EXPECT_EQ(row_starts(b, 4, 9), first);
  o.seed = 43;
  DataLoader c(o);
  const std::vector<int32_t> other = row_starts(c, 4, 9);
  EXPECT_NE(other, first);
  EXPECT_EQ(sorted(other), all_row_starts());
}

TEST_F(LoaderTest, EachEpochIsAnotherPermutation) {
  LoaderOptions o = numbered_shards();
  o.batch_size = 6;
  DataLoader loader(o);
  std::vector<int32_t> epochs[3];
  for (int k = 0; k < 18; ++k) {
    const Batch& batch = loader.next();
    EXPECT_EQ(batch.epoch, static_cast<uint64_t>(k / 6));
    for (int b = 0; b < 6; ++b) epochs[k / 6].push_back(batch.ids[b * T]);
  }
  for (const auto& e : epochs) EXPECT_EQ(sorted(e), all_row_starts());
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);
  EXPECT_NE(epochs[0], all_row_starts());  // shuffled at all
}

TEST_F(LoaderTest, WithoutShuffleRowsComeInShardPathOrder) {
  LoaderOptions o = numbered_shards();
  o.shuffle = false;
  o.batch_size = 4;
  DataLoader loader(o);
  std::vector<int32_t> want = all_row_starts();
  want.insert(want.end(), want.begin(), want.begin() + 4);  // the next epoch starts over
  EXPECT_EQ(row_starts(loader, 4, 10), want);
}

// Stopping after k batches and building a loader from cursor() continues exactly where an
// uninterrupted loader goes, whatever the prefetch depth or buffer kind; 10 steps of 2 ranks x 5
// rows straddle the epoch boundaries at rows 36 and 72.
TEST_F(LoaderTest, ResumesExactlyFromTheCursor) {
  LoaderOptions o = numbered_shards();
  o.world = 2;
  o.rank = 1;
  o.batch_size = 5;
  struct Seen {
    std::vector<int32_t> ids, targets;
    std::vector<uint8_t> doc_start;
    uint64_t epoch;
  };
  auto take = [](DataLoader& loader) {
    const Batch& b = loader.next();
    return Seen{{b.ids, b.ids + 5 * T},
                {b.targets, b.targets + 5 * T},
                {b.doc_start, b.doc_start + 5 * T},
                b.epoch};
  };
  DataLoader reference(o);
  std::vector<Seen> want;
  for (int k = 0; k < 10; ++k) want.push_back(take(reference));

  for (int stop_after : {3, 4, 7}) {
    LoaderOptions first = o;
    first.prefetch = 1;
    DataLoader stopped(first);
    EXPECT_EQ(stopped.cursor().rows, 0u);
    for (int k = 0; k < stop_after; ++k) take(stopped);
    const LoaderCursor cursor = stopped.cursor();
    EXPECT_EQ(cursor.rows, static_cast<uint64_t>(stop_after * 2 * 5));

    LoaderOptions resumed = o;
    resumed.start = cursor;
    resumed.prefetch = 3;
    resumed.pinned = true;
    DataLoader again(resumed);
    for (int k = stop_after; k < 10; ++k) {
      const Seen got = take(again);
      EXPECT_EQ(got.ids, want[k].ids) << "batch " << k << " after stopping at " << stop_after;
      EXPECT_EQ(got.targets, want[k].targets) << "batch " << k;
      EXPECT_EQ(got.doc_start, want[k].doc_start) << "batch " << k;
      EXPECT_EQ(got.epoch, want[k].epoch) << "batch " << k;
    }
    EXPECT_EQ(again.cursor().rows, 10u * 2 * 5);
  }
  EXPECT_EQ(want[3].epoch, 0u);  // rows 30..39 of the stream: rank 1 has 35..39, epoch 0 and 1
  EXPECT_EQ(want[4].epoch, 1u);
}

// The batch next() returned stays intact while the background thread fills every slot it may.
TEST_F(LoaderTest, HeldBatchStaysValidWhileLaterOnesArePrepared) {
  LoaderOptions o = numbered_shards();
  o.batch_size = 3;
  DataLoader reference(o);
  const std::vector<int32_t> want = row_starts(reference, 3, 6);
  for (int prefetch : {1, 2}) {
    o.prefetch = prefetch;
    DataLoader loader(o);
    for (int k = 0; k < 6; ++k) {
      const Batch& batch = loader.next();
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      for (int b = 0; b < 3; ++b) {
        EXPECT_EQ(batch.ids[b * T], want[3 * k + b]) << "prefetch " << prefetch << " batch " << k;
        EXPECT_EQ(batch.targets[b * T + T - 1], want[3 * k + b] + T)
            << "prefetch " << prefetch << " batch " << k;
      }
    }
  }
}

// Rows are tokens [r·T, r·T + T + 1) of the shard as stored: ids the first T, targets the last T.
TEST_F(LoaderTest, IdsAndTargetsAreTheRowAndTheRowShiftedByOne) {
  CounterRng rng(5, 5);
  std::vector<int32_t> tokens(5 * T + 3);
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng.below(50000));
  ShardInfo info;
  info.vocab_size = 50000;
  info.split = "train";
  write_shard(path("r.h5"), tokens, {0, static_cast<int64_t>(tokens.size())}, info);
  LoaderOptions o;
  o.shards = {path("r.h5")};
  o.seq_len = T;
  o.batch_size = 5;
  o.shuffle = false;
  DataLoader loader(o);
  const Batch& batch = loader.next();
  for (int64_t r = 0; r < 5; ++r) {
    for (int64_t t = 0; t < T; ++t) {
      EXPECT_EQ(batch.ids[r * T + t], tokens[r * T + t]) << "row " << r << " position " << t;
      EXPECT_EQ(batch.targets[r * T + t], tokens[r * T + t + 1])
          << "row " << r << " position " << t;
    }
  }
}

TEST_F(LoaderTest, DocStartMarksExactlyTheDocumentStarts) {
  // Documents starting inside rows, at a row's first token, one of a single token, an empty one
  // (a repeated offset), and the shard's end, which starts nothing.
  const int64_t n = 6 * T + 1;
  const std::vector<int64_t> docs = {0, 3, 4, 8, 9, 9, 20, 31, 32, 40, 47, n};
  std::vector<int32_t> tokens(n, 1);
  ShardInfo info;
  info.vocab_size = 2;
  info.split = "val";
  write_shard(path("d.h5"), tokens, docs, info);
  LoaderOptions o;
  o.shards = {path("d.h5")};
  o.seq_len = T;
  o.batch_size = 6;
  o.shuffle = false;
  DataLoader loader(o);
  const Batch& batch = loader.next();
  const std::set<int64_t> starts(docs.begin(), docs.end() - 1);
  for (int64_t i = 0; i < 6 * T; ++i) {
    EXPECT_EQ(batch.doc_start[i], starts.count(i)) << "token " << i;
  }
}

// A read that fails on the background thread reaches the caller of next(), every time it asks.
TEST_F(LoaderTest, BackgroundReadErrorSurfacesInNext) {
  LoaderOptions o = numbered_shards();
  o.batch_size = 2;
  o.prefetch = 1;
  DataLoader loader(o);
  loader.next();
  {
    // Close the loader's datasets behind its back, as a failing disk or file system would.
    Hdf5Lock lock;
    const ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_DATASET);
    ASSERT_GT(n, 0);
    std::vector<hid_t> ids(static_cast<size_t>(n));
    ASSERT_EQ(H5Fget_obj_ids(H5F_OBJ_ALL, H5F_OBJ_DATASET, ids.size(), ids.data()), n);
    for (hid_t id : ids) ASSERT_GE(H5Dclose(id), 0);
  }
  // With prefetch 1 at most one batch was made before the datasets went away.
  int delivered = 0;
  std::string message;
  try {
    for (; delivered < 3; ++delivered) loader.next();
  } catch (const Error& e) {
    message = e.what();
  }
  EXPECT_LE(delivered, 1);
  EXPECT_NE(message.find("cannot read tokens"), std::string::npos) << message;
  EXPECT_NE(message.find(dir_.string()), std::string::npos) << message;
  EXPECT_THROW(loader.next(), Error);
}

// ---- refusals ------------------------------------------------------------------------------

TEST_F(LoaderTest, RefusesShardsOfAnotherTokenizer) {
  LoaderOptions o = numbered_shards();
  o.batch_size = 1;
  o.tokenizer = "0000000000000000";
  expect_error([&] { DataLoader l(o); },
               {"s0.h5", "tokenizer feedfeedfeedfeed", "uses tokenizer 0000000000000000"});
  o.tokenizer = "feedfeedfeedfeed";
  EXPECT_NO_THROW(DataLoader{o});
}

TEST_F(LoaderTest, RefusesShardsThatDisagreeOnTheTokenizer) {
  LoaderOptions o = numbered_shards();
  o.batch_size = 1;
  ShardInfo info;
  info.vocab_size = 10;
  info.tokenizer = "other";
  info.split = "train";
  write_shard(path("x.h5"), std::vector<int32_t>(20, 1), {0, 20}, info);
  o.shards.push_back(path("x.h5"));
  expect_error([&] { DataLoader l(o); }, {"x.h5", "tokenizer other", "s0.h5", "share a tokenizer"});
}

TEST_F(LoaderTest, RefusesAVocabularyLargerThanTheModels) {
  LoaderOptions o = numbered_shards();
  o.batch_size = 1;
  o.max_vocab = kVocab - 1;
  expect_error([&] { DataLoader l(o); }, {"s0.h5", "vocab_size 4000", "vocabulary of 3999"});
  o.max_vocab = kVocab;
  EXPECT_NO_THROW(DataLoader{o});
}

TEST_F(LoaderTest, RefusesFewerRowsThanOneStepNeeds) {
  LoaderOptions o = numbered_shards();
  o.world = 4;
  o.batch_size = 10;
  expect_error([&] { DataLoader l(o); },
               {"hold 36 rows of 9 tokens", "4 ranks x 10 rows needs 40"});
  o.shards = {path("s3.h5")};  // too short for a single row
  o.world = 1;
  o.batch_size = 1;
  expect_error([&] { DataLoader l(o); }, {"hold 0 rows"});
  o.shards = {};
  expect_error([&] { DataLoader l(o); }, {"no shard files"});
}

TEST_F(LoaderTest, RefusesImpossibleOptions) {
  LoaderOptions o = numbered_shards();
  o.batch_size = 1;
  o.rank = 2;
  o.world = 2;
  expect_error([&] { DataLoader l(o); }, {"rank 2 of world 2"});
  o.rank = 0;
  o.prefetch = 0;
  expect_error([&] { DataLoader l(o); }, {"prefetch is 0"});
  o.prefetch = 1;
  o.shards.push_back(o.shards.front());
  expect_error([&] { DataLoader l(o); }, {"s3.h5", "listed twice"});
}

// ---- the loader's buffers ------------------------------------------------------------------

// Page-locked exactly when asked for and a CUDA device is there; page-aligned and writable
// either way; a move hands the memory over.
TEST(HostBuffer, PinnedOnlyWithADeviceAlignedAndMovable) {
  for (bool pinned : {false, true}) {
    HostBuffer a(10000, pinned);
    EXPECT_EQ(a.pinned(), pinned && cuda_device_count() > 0);
    EXPECT_EQ(a.size(), 10000u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data()) % 4096, 0u);
    std::fill(a.as<uint8_t>(), a.as<uint8_t>() + 10000, uint8_t{7});
    void* const memory = a.data();
    HostBuffer b(std::move(a));
    EXPECT_EQ(b.data(), memory);
    EXPECT_EQ(a.data(), nullptr);
    EXPECT_EQ(b.as<uint8_t>()[9999], 7);
    EXPECT_EQ(b.pinned(), pinned && cuda_device_count() > 0);
  }
  EXPECT_EQ(HostBuffer(0, true).data(), nullptr);
}

// ---- find_shards ---------------------------------------------------------------------------

TEST_F(LoaderTest, FindShardsTakesDirectoriesPrefixesAndFiles) {
  for (const char* name :
       {"train-2.h5", "train-1.h5", "val-1.h5", "train-3.h5.tmp", "notes.txt", "b.h5"}) {
    std::ofstream(path(name)) << "x";
  }
  fs::create_directories(path("sub.h5"));  // a directory is not a shard, whatever its name
  EXPECT_EQ(find_shards(dir_.string()),
            (std::vector<std::string>{path("b.h5"), path("train-1.h5"), path("train-2.h5"),
                                      path("val-1.h5")}));
  EXPECT_EQ(find_shards(path("train-")),
            (std::vector<std::string>{path("train-1.h5"), path("train-2.h5")}));
  EXPECT_EQ(find_shards(path("val-1.h5")), std::vector<std::string>{path("val-1.h5")});
  expect_error([&] { find_shards(path("train-3.h5.tmp")); }, {"train-3.h5.tmp", "partly written"});
  expect_error([&] { find_shards(path("test-")); }, {"no shards match " + path("test-")});
  expect_error([&] { find_shards(path("missing/dir")); },
               {"no shards match " + path("missing/dir")});
}

}  // namespace
}  // namespace hymba::test
