// The training loop behind `hymba-train`: AdamW with warmup + cosine, global-norm clipping,
// gradient accumulation; progress lines on a stream and JSON lines in <run.dir>/metrics.jsonl;
// validation every eval.every steps; checkpoints every checkpoint.every steps, and resume from
// them (train.resume, run_state.h).
#pragma once

#include <cstdint>
#include <iosfwd>

#include "config/config.h"
#include "parallel/process_group.h"

namespace hymba {

// What this process did. A resumed run's process runs steps resumed_from_step + 1 .. train.steps.
struct TrainSummary {
  int64_t resumed_from_step = 0;  // the checkpoint's step; 0 for a fresh start
  int64_t steps = 0;       // optimizer steps this process ran
  double first_loss = 0;   // mean training loss of this process's first step
  double final_loss = 0;   // mean training loss of the last step
  double val_loss = -1;    // mean validation loss after training; −1 without data.val
  double recall_accuracy = -1;  // after training on data.format recall; −1 otherwise
  double seconds = 0;             // wall time of the steps, validation and checkpoints included
  double tokens_per_sec = 0;      // training steps only
};

// Runs the optimizer steps up to cfg.train.steps, starting fresh or from the checkpoint that
// train.resume names. With train.resume: none, a run.dir that already holds a run is refused, so
// a finished run is never overwritten. A single process.
TrainSummary train(const Config& cfg, std::ostream& log);

// The same on every rank of `group` (launched by mpirun): data parallelism with ZeRO-1
// (trainer/data_parallel.h), train.batch_size rows per micro-batch split evenly over the ranks.
// Rank 0 prints to `log` and owns run.dir (metrics, checkpoints); the others print nothing but
// errors. The summary is the same on every rank.
TrainSummary train(const Config& cfg, ProcessGroup& group, std::ostream& log);

}  // namespace hymba
