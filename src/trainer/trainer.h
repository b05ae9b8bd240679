// The training loop behind `hymba-train`: AdamW with warmup + cosine, global-norm clipping,
// gradient accumulation; progress lines on a stream and JSON lines in <run.dir>/metrics.jsonl.
#pragma once

#include <cstdint>
#include <iosfwd>

#include "config/config.h"

namespace hymba {

struct TrainSummary {
  int64_t steps = 0;
  double first_loss = 0;   // mean training loss of step 1
  double final_loss = 0;   // mean training loss of the last step
  double val_loss = -1;    // mean validation loss after training; −1 without data.val
  double seconds = 0;
};

// Runs cfg.train.steps optimizer steps. Refuses a run.dir that already holds metrics.jsonl, so a
// finished run is never overwritten.
TrainSummary train(const Config& cfg, std::ostream& log);

}  // namespace hymba
