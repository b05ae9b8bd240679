// Learning rate at an optimizer step: linear warmup from 0, then cosine decay to min_lr at the
// last step.
#pragma once

#include <cstdint>

#include "config/config.h"

namespace hymba {

// step counts from 0; total_steps = train.steps.
double learning_rate(const OptimConfig& o, int64_t step, int64_t total_steps);

}  // namespace hymba
