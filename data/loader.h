// The training data loader: rows of T + 1 contiguous tokens from a set of shards, prefetched on
// a background thread, split across data-parallel ranks, shuffled deterministically.
//
// Rows: shard s of n tokens holds rows r = 0 .. (n − 1) / T − 1, row r being tokens
// [r·T, r·T + T + 1); ids = row[0:T], targets = row[1:T+1]. Rows may span documents (packed
// training); doc_start marks where a document begins.
//
// Order: epoch e visits every row of every shard once, in an order that is a pure function of
// (seed, e). The run's row stream is epoch 0, then epoch 1, ... without gaps. Step k of the run
// takes stream rows [k·W·B, (k+1)·W·B) for W ranks of B rows; rank r takes the r-th B of them.
// So ranks never overlap, every row is seen once per epoch, and the cursor is one number.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hymba {

// Where the loader stands: rows of the stream consumed by all ranks together.
struct LoaderCursor {
  uint64_t rows = 0;
};

struct Batch {
  int32_t* ids = nullptr;       // [B, T]
  int32_t* targets = nullptr;   // [B, T]
  uint8_t* doc_start = nullptr; // [B, T]: 1 where ids[b, t] is the first token of a document
  uint64_t epoch = 0;           // epoch of the batch's first row
};

struct LoaderOptions {
  std::vector<std::string> shards;  // shard files (order does not matter: sorted by path)
  int64_t seq_len = 0;              // T
  int64_t batch_size = 0;           // B rows per rank per batch
  int rank = 0, world = 1;          // data-parallel position
  uint64_t seed = 0;
  bool shuffle = true;              // false: rows in shard-path order (evaluation)
  LoaderCursor start;               // resume point
  int prefetch = 4;                 // batches prepared ahead
  bool pinned = false;              // page-locked host buffers (for fast copies to a GPU)
  // Refuse shards that do not fit the model: vocab above this, or another tokenizer identity
  // (empty = accept any).
  int64_t max_vocab = 0;
  std::string tokenizer;
};

class DataLoader {
 public:
  explicit DataLoader(const LoaderOptions& options);
  ~DataLoader();

  // The next batch of this rank. Its buffers stay valid until the next call.
  const Batch& next();

  // The cursor after the last batch next() returned (checkpoint this to resume exactly there).
  LoaderCursor cursor() const;
  int64_t rows_per_epoch() const;
  int64_t tokens() const;  // tokens in all shards

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Shard files named by `pattern`: a directory (every *.h5 in it), a single file, or a
// directory plus a name prefix such as dir/train- (every dir/train-*.h5). Sorted; none found
// is an error naming the pattern.
std::vector<std::string> find_shards(const std::string& pattern);

}  // namespace hymba
