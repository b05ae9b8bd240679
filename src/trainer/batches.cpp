#include "trainer/batches.h"

#include <ostream>
#include <sstream>

namespace hymba {

namespace {

LoaderOptions loader_options(const Config& cfg, const DatasetShards& shards, LoaderCursor start,
                             const ProcessGroup& replicas) {
  LoaderOptions o;
  o.shards = shards.train;
  o.seq_len = cfg.train.seq_len;
  o.batch_size = cfg.train.batch_size / replicas.size();
  o.rank = replicas.rank();
  o.world = replicas.size();
  o.seed = cfg.train.seed;
  o.max_vocab = cfg.model.vocab_size;
  o.tokenizer = shards.tokenizer;
  o.start = start;
  return o;
}

}  // namespace

TrainingBatches::TrainingBatches(const Config& cfg, LoaderCursor start, const ParallelGrid& grid,
                                 std::ostream& log)
    : cfg_(cfg), rank_(grid.data().rank()), world_(grid.data().size()) {
  if (cfg.data.format == "recall") {
    task_ = recall_task_for_row(RecallTask{}, cfg.train.seq_len);
    check_recall_task(task_, cfg.model.vocab_size);
    recall_rows_ = start.rows;
    return;
  }
  // One rank prepares a text corpus; the others would race it for the same cache files.
  const ProcessGroup& job = grid.job();
  if (job.rank() == 0) shards_ = dataset_shards(cfg.data, log);
  job.barrier();
  if (job.rank() != 0) shards_ = dataset_shards(cfg.data, log);
  loader_ = std::make_unique<DataLoader>(loader_options(cfg, shards_, start, grid.data()));
}

const Batch& TrainingBatches::next() {
  if (loader_) return loader_->next();
  // Micro-batch i of the run is recall batch i of the training seed (B rows): a pure function of
  // the cursor. Rank r takes its r-th part, itself batch i·world + r of B / world rows.
  const int64_t B = cfg_.train.batch_size, rows = B / world_;
  const uint64_t index = recall_rows_ / uint64_t(B) * uint64_t(world_) + uint64_t(rank_);
  recall_batch(task_, rows, cfg_.train.seq_len, cfg_.train.seed, index, ids_, targets_);
  recall_rows_ += uint64_t(B);
  recall_batch_.ids = ids_.data();
  recall_batch_.targets = targets_.data();
  return recall_batch_;
}

LoaderCursor TrainingBatches::cursor() const {
  return loader_ ? loader_->cursor() : LoaderCursor{recall_rows_};
}

int64_t TrainingBatches::counted_targets_per_batch() const {
  return cfg_.train.batch_size * (loader_ ? cfg_.train.seq_len : task_.queries);
}

std::string TrainingBatches::describe() const {
  std::ostringstream s;
  if (loader_) {
    s << loader_->tokens() << " tokens, " << loader_->rows_per_epoch() << " rows of "
      << cfg_.train.seq_len + 1 << " per epoch";
  } else {
    s << "associative recall, " << task_.pairs << " key-value pairs and " << task_.queries
      << " queries per row (" << task_.num_keys << " keys, " << task_.num_values << " values)";
  }
  return s.str();
}

}  // namespace hymba
