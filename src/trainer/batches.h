// Where training batches come from: the shard loader (data.format text or shards) or the
// synthetic associative-recall task (data.format recall, src/eval/recall.h), behind one interface
// so the training step does not care.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <vector>

#include "config/config.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "eval/recall.h"
#include "parallel/grid.h"

namespace hymba {

class TrainingBatches {
 public:
  // Prepares the corpus if needed (text; job rank 0 first, the others then find it prepared) and
  // positions the stream at `start`. Each data-parallel replica of `grid` gets its
  // train.batch_size / replicas rows of every micro-batch of train.batch_size rows (disjoint
  // across replicas; the tensor-parallel ranks of a replica get the same rows).
  TrainingBatches(const Config& cfg, LoaderCursor start, const ParallelGrid& grid, std::ostream& log);

  const Batch& next();  // this rank's rows of the next micro-batch
  LoaderCursor cursor() const;  // rows consumed, as checkpoints store it

  // Targets that count in every micro-batch, over all replicas: B·T for text, B·queries for the
  // recall task (the other targets are ignored), B = train.batch_size. The loss is a mean over these.
  int64_t counted_targets_per_batch() const;

  bool recall() const { return loader_ == nullptr; }
  const RecallTask& recall_task() const { return task_; }  // the task at this row length
  const DatasetShards& shards() const { return shards_; }  // train and val (empty for recall)
  std::string describe() const;                             // for the run's opening lines

 private:
  const Config& cfg_;
  int rank_ = 0, world_ = 1;
  DatasetShards shards_;
  std::unique_ptr<DataLoader> loader_;
  RecallTask task_;
  uint64_t recall_rows_ = 0;
  std::vector<int32_t> ids_, targets_;  // [B, T] the recall batch
  Batch recall_batch_;
};

}  // namespace hymba
