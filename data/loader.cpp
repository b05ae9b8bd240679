#include "data/loader.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/host_memory.h"
#include "core/rng.h"
#include "data/shard.h"

namespace hymba {
namespace {

// The order of one epoch: a pseudo-random permutation of the rows [0, n), keyed by (seed, epoch)
// and computed position by position. It is a Feistel network on the smallest domain of 4^h >= n
// values, walked until it lands inside [0, n) (cycle walking keeps it a permutation of [0, n)).
// Why not Fisher–Yates over a table: a trillion-token corpus has ~500 M rows of 2048, a 2 GB table
// per rank rebuilt at every epoch start; this costs nothing to set up and any row of any epoch
// can be computed on its own, which is what resume and the rank split need.
class RowOrder {
 public:
  RowOrder(uint64_t rows, uint64_t seed, bool shuffle)
      : rows_(rows), seed_(seed), shuffle_(shuffle) {
    while (half_bits_ < 32 && (uint64_t{1} << (2 * half_bits_)) < rows) ++half_bits_;
    half_mask_ = (uint64_t{1} << half_bits_) - 1;
  }

  uint64_t row(uint64_t epoch, uint64_t position) const {
    if (!shuffle_) return position;
    static const uint64_t stream = hash_name("data-loader/epoch-order");
    uint64_t keys[kRounds];
    for (int r = 0; r < kRounds; ++r) keys[r] = mix64(mix64(seed_ ^ mix64(stream + epoch)) + r);
    uint64_t x = position;
    do x = permute(keys, x);
    while (x >= rows_);
    return x;
  }

 private:
  static constexpr int kRounds = 6;  // 4 already make a strong pseudo-random permutation

  uint64_t permute(const uint64_t* keys, uint64_t x) const {
    uint64_t left = x >> half_bits_, right = x & half_mask_;
    for (int r = 0; r < kRounds; ++r) {
      const uint64_t mixed = left ^ (mix64(keys[r] ^ right) & half_mask_);
      left = right;
      right = mixed;
    }
    return (left << half_bits_) | right;
  }

  uint64_t rows_, seed_;
  bool shuffle_;
  int half_bits_ = 1;
  uint64_t half_mask_ = 1;
};

// Marks out[t] = 1 where token start + t of the shard begins a document. The final entry of
// doc_offsets (token_count) starts nothing, and lies past every row's ids, so it is never marked.
void mark_doc_starts(const std::vector<int64_t>& doc_offsets, int64_t start, int64_t T,
                     uint8_t* out) {
  std::memset(out, 0, static_cast<size_t>(T));
  const auto end = doc_offsets.end();
  for (auto it = std::lower_bound(doc_offsets.begin(), end, start); it != end && *it < start + T;
       ++it) {
    out[*it - start] = 1;
  }
}

// The options' own rules, checked before any shard is opened.
void check_options(const LoaderOptions& o) {
  if (o.seq_len < 1) fail("data loader: seq_len is ", o.seq_len, " (must be at least 1)");
  if (o.batch_size < 1) fail("data loader: batch_size is ", o.batch_size, " (must be at least 1)");
  if (o.world < 1 || o.rank < 0 || o.rank >= o.world) {
    fail("data loader: rank ", o.rank, " of world ", o.world, " (need 0 <= rank < world)");
  }
  if (o.prefetch < 1) fail("data loader: prefetch is ", o.prefetch, " (must be at least 1)");
  if (o.shards.empty()) fail("data loader: no shard files given");
}

// One batch's buffers in the prefetch ring.
struct Slot {
  HostBuffer ids;        // [B, T] + 1 spare element, see DataLoader::Impl::fill
  HostBuffer targets;    // [B, T]
  HostBuffer doc_start;  // [B, T]
  Batch batch;
};

}  // namespace

struct DataLoader::Impl {
  explicit Impl(const LoaderOptions& options);
  ~Impl();
  void produce();
  void fill(Slot& slot, uint64_t index) const;

  int64_t T, B, W, rank;
  uint64_t start_rows;              // the cursor this loader started from
  std::vector<ShardReader> shards;  // the shards that hold at least one row, sorted by path
  std::vector<int64_t> first_row;   // [shards + 1]: each shard's first global row; last = rows
  int64_t rows = 0;                 // rows per epoch
  int64_t tokens = 0;               // in every shard given, short ones included
  RowOrder order;
  int64_t prefetch;
  std::vector<Slot> slots;  // [prefetch + 1]: the caller's current batch plus `prefetch` ahead

  // Batch j of this loader goes in slot j % slots.size(). Batches [handed, produced) are ready;
  // batch handed − 1 is the caller's until the next call to next().
  std::mutex mutex;
  std::condition_variable ready, space;
  uint64_t produced = 0, handed = 0;
  bool stop = false;
  std::exception_ptr error;  // raised by the background thread, re-thrown by next()
  std::thread worker;
};

DataLoader::Impl::Impl(const LoaderOptions& o)
    : T(o.seq_len),
      B(o.batch_size),
      W(o.world),
      rank(o.rank),
      start_rows(o.start.rows),
      order(0, 0, false),
      prefetch(o.prefetch) {
  check_options(o);
  std::vector<std::string> paths = o.shards;
  std::sort(paths.begin(), paths.end());
  if (auto dup = std::adjacent_find(paths.begin(), paths.end()); dup != paths.end()) {
    fail(*dup, ": shard listed twice");
  }

  std::string tokenizer_of_first;
  first_row.push_back(0);
  for (const std::string& path : paths) {
    ShardReader shard(path);
    const ShardInfo& info = shard.info();
    if (o.max_vocab > 0 && info.vocab_size > o.max_vocab) {
      fail(path, ": vocab_size ", info.vocab_size, " is larger than the model's vocabulary of ",
           o.max_vocab);
    }
    if (!o.tokenizer.empty() && info.tokenizer != o.tokenizer) {
      fail(path, ": made with tokenizer ", info.tokenizer, " but the run uses tokenizer ",
           o.tokenizer);
    }
    if (path == paths.front()) {
      tokenizer_of_first = info.tokenizer;
    } else if (info.tokenizer != tokenizer_of_first) {
      fail(path, ": made with tokenizer ", info.tokenizer, " but ", paths.front(),
           " with tokenizer ", tokenizer_of_first,
           " (the shards of one run must share a tokenizer)");
    }
    tokens += info.token_count;
    // A row needs T + 1 tokens; rows overlap by one, so n tokens hold (n − 1) / T of them.
    const int64_t shard_rows = info.token_count > T ? (info.token_count - 1) / T : 0;
    if (shard_rows == 0) continue;
    rows += shard_rows;
    first_row.push_back(rows);
    shards.push_back(std::move(shard));
  }
  if (rows < W * B) {
    fail("data loader: the ", paths.size(), " shards hold ", rows, " rows of ", T + 1,
         " tokens, but one step of ", W, " ranks x ", B, " rows needs ", W * B, " distinct rows");
  }
  order = RowOrder(static_cast<uint64_t>(rows), o.seed, o.shuffle);

  slots.resize(static_cast<size_t>(prefetch + 1));
  const auto n = static_cast<size_t>(B * T);
  for (Slot& s : slots) {
    s.ids = HostBuffer((n + 1) * sizeof(int32_t), o.pinned);
    s.targets = HostBuffer(n * sizeof(int32_t), o.pinned);
    s.doc_start = HostBuffer(n, o.pinned);
    s.batch.ids = s.ids.as<int32_t>();
    s.batch.targets = s.targets.as<int32_t>();
    s.batch.doc_start = s.doc_start.as<uint8_t>();
  }
  worker = std::thread([this] { produce(); });
}

DataLoader::Impl::~Impl() {
  {
    std::lock_guard lock(mutex);
    stop = true;
  }
  space.notify_all();
  if (worker.joinable()) worker.join();
}

void DataLoader::Impl::produce() {
  try {
    for (uint64_t j = 0;; ++j) {
      {
        std::unique_lock lock(mutex);
        // Batch j's slot last held batch j − prefetch − 1, which the caller gives up when it
        // asks for batch j − prefetch.
        space.wait(lock, [&] { return stop || j < handed + prefetch; });
        if (stop) return;
      }
      fill(slots[j % slots.size()], j);
      {
        std::lock_guard lock(mutex);
        produced = j + 1;
      }
      ready.notify_one();
    }
  } catch (...) {
    {
      std::lock_guard lock(mutex);
      error = std::current_exception();
    }
    ready.notify_one();
  }
}

// Batch `index` of this loader: stream rows [first, first + B) with first = the starting cursor +
// index·W·B + rank·B.
void DataLoader::Impl::fill(Slot& slot, uint64_t index) const {
  const auto N = static_cast<uint64_t>(rows);
  const uint64_t first = start_rows + index * W * B + rank * B;
  slot.batch.epoch = first / N;
  int32_t* ids = slot.batch.ids;          // [B, T] + 1
  int32_t* targets = slot.batch.targets;  // [B, T]
  for (int64_t b = 0; b < B; ++b) {
    const uint64_t i = first + b;
    const auto g = static_cast<int64_t>(order.row(i / N, i % N));
    const size_t s =
        std::upper_bound(first_row.begin(), first_row.end(), g) - first_row.begin() - 1;
    const int64_t start = (g - first_row[s]) * T;  // the row's first token within its shard
    // The row's T + 1 tokens land at ids[b, 0 .. T]: the last one spills into ids[b + 1, 0] (or
    // the spare element), which row b + 1 overwrites only after targets has copied it out.
    shards[s].read_tokens(start, T + 1, ids + b * T);
    std::memcpy(targets + b * T, ids + b * T + 1, static_cast<size_t>(T) * sizeof(int32_t));
    mark_doc_starts(shards[s].doc_offsets(), start, T, slot.batch.doc_start + b * T);
  }
}

DataLoader::DataLoader(const LoaderOptions& options) : impl_(std::make_unique<Impl>(options)) {}

DataLoader::~DataLoader() = default;

const Batch& DataLoader::next() {
  Impl& d = *impl_;
  std::unique_lock lock(d.mutex);
  d.ready.wait(lock, [&] { return d.produced > d.handed || d.error; });
  // Batches made before a failure are still handed out; then the failure is.
  if (d.produced == d.handed) std::rethrow_exception(d.error);
  const Slot& slot = d.slots[d.handed % d.slots.size()];
  ++d.handed;
  lock.unlock();
  d.space.notify_one();
  return slot.batch;
}

LoaderCursor DataLoader::cursor() const {
  std::lock_guard lock(impl_->mutex);
  return {impl_->start_rows + impl_->handed * impl_->W * impl_->B};
}

int64_t DataLoader::rows_per_epoch() const { return impl_->rows; }

int64_t DataLoader::tokens() const { return impl_->tokens; }

std::vector<std::string> find_shards(const std::string& pattern) {
  namespace fs = std::filesystem;
  std::vector<std::string> found;
  // Regular files in `dir` named prefix*.h5 (a partly written shard is *.h5.tmp: never matched).
  auto add_matching = [&](const fs::path& dir, const std::string& prefix) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir.empty() ? fs::path(".") : dir, ec)) {
      const std::string name = entry.path().filename().string();
      if (name.size() >= prefix.size() + 3 && name.starts_with(prefix) && name.ends_with(".h5") &&
          entry.is_regular_file(ec)) {
        found.push_back((dir / name).string());
      }
    }
  };
  std::error_code ec;
  if (fs::is_directory(pattern, ec)) {
    add_matching(pattern, "");
  } else if (fs::is_regular_file(pattern, ec)) {
    if (pattern.ends_with(".tmp")) fail(pattern, ": a partly written shard (.tmp), not a shard");
    found.push_back(pattern);
  } else {
    const fs::path p(pattern);
    add_matching(p.parent_path(), p.filename().string());
  }
  if (found.empty()) {
    fail("no shards match ", pattern,
         " (a directory of .h5 files, one .h5 file, or a directory plus a name prefix such as",
         " dir/train-)");
  }
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace hymba
