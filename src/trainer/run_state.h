// Checkpoints and resume for the training loop (train.resume, checkpoint.*): which saved state a
// run continues from, and what run.dir keeps of the steps after it.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

#include "config/config.h"
#include "data/loader.h"
#include "io/gemm_choices.h"
#include "parallel/grid.h"

namespace hymba {

// Where a run continues: the state restored into the model and the optimizer.
struct ResumePoint {
  std::string checkpoint;  // the file it came from; empty for a fresh start
  int64_t step = 0;        // optimizer steps already done
  LoaderCursor cursor;     // where the training data stream continues
  // The GEMM algorithms the checkpoint kept (on job rank 0 only; none when it has none).
  std::optional<GemmChoices> gemm;
};

// Restores what train.resume names into the model's parameters and the optimizer:
//   none: nothing (a fresh start); a run.dir that already holds a run is refused.
//   auto: the newest checkpoint in run.dir that loads completely. One that does not (truncated,
//         corrupt) is logged and the one before it tried. No checkpoint at all: a fresh start.
//         Checkpoints that exist but none of which loads: an Error (starting over next to them
//         would let pruning delete the new run's checkpoints in favour of the broken ones).
//   else: the checkpoint file at that path (relative to the working directory).
// The checkpoint's config must agree with cfg on every model.* and data.* key (data.cache_dir
// excepted) and on train.batch_size, seq_len, grad_accum and seed; otherwise an Error names the
// checkpoint, the config file and each key that differs. train.steps may not be below the
// checkpoint's step.
// Model/Optimizer: HymbaModel<float> + AdamW<float>, or a CUDA model (cuda_model.h) + CudaAdamW.
// Every rank of the grid calls it: job rank 0 decides and reads (errors are raised there), then
// every rank receives the weights of its tensor-parallel share and the moments of its ZeRO-1
// shard of that. A checkpoint holds whole tensors, so it resumes under any (data-parallel,
// tensor-parallel) layout.
template <class Model, class Optimizer>
ResumePoint restore_state(const Config& cfg, Model& model, Optimizer& opt, const ParallelGrid& grid,
                          std::ostream& log);

// Moves aside what run.dir holds of steps after `step`: a timeline that died with its process.
// metrics.jsonl lines with a later step (or none: a line the crash cut short) go to
// metrics.orphaned-<step>.jsonl (appended); checkpoint-N.h5 with N > step is renamed
// checkpoint-N.orphaned-<step>.h5, which neither resume nor pruning looks at. Nothing is deleted.
void set_aside_later_steps(const std::string& run_dir, int64_t step, std::ostream& log);

// Writes run.dir/checkpoint-<step>.h5 (parameters, AdamW moments and step count, the loader
// cursor, the resolved config), then prunes old checkpoints (checkpoint.keep, keep_every).
// Logs the path, the size and the seconds taken. Every rank of the grid calls it: the moment
// shards are gathered within each data-parallel group, the tensor shares to job rank 0, which
// writes whole tensors.
template <class Model, class Optimizer>
void write_checkpoint(const Config& cfg, Model& model, Optimizer& opt, const ParallelGrid& grid, int64_t step,
                      LoaderCursor cursor, std::ostream& log);

}  // namespace hymba
