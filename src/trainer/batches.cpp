#include "trainer/batches.h"

#include <ostream>
#include <sstream>

namespace hymba {

namespace {

LoaderOptions loader_options(const Config& cfg, const DatasetShards& shards, LoaderCursor start) {
  LoaderOptions o;
  o.shards = shards.train;
  o.seq_len = cfg.train.seq_len;
  o.batch_size = cfg.train.batch_size;
  o.seed = cfg.train.seed;
  o.max_vocab = cfg.model.vocab_size;
  o.tokenizer = shards.tokenizer;
  o.start = start;
  return o;
}

}  // namespace

TrainingBatches::TrainingBatches(const Config& cfg, LoaderCursor start, std::ostream& log)
    : cfg_(cfg) {
  if (cfg.data.format == "recall") {
    task_ = recall_task_for_row(RecallTask{}, cfg.train.seq_len);
    check_recall_task(task_, cfg.model.vocab_size);
    recall_rows_ = start.rows;
    return;
  }
  shards_ = dataset_shards(cfg.data, log);
  loader_ = std::make_unique<DataLoader>(loader_options(cfg, shards_, start));
}

const Batch& TrainingBatches::next() {
  if (loader_) return loader_->next();
  // Batch i of the run is recall batch i of the training seed: a pure function of the cursor.
  const int64_t B = cfg_.train.batch_size;
  recall_batch(task_, B, cfg_.train.seq_len, cfg_.train.seed, recall_rows_ / uint64_t(B), ids_, targets_);
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
