// The model summary that `hymba-train CONFIG --info` prints: parameters per tensor kind and model
// FLOPs per token. (The memory it prints, per token and for a run, depends on the device and
// precision: trainer/memory_plan.h.)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"

namespace hymba {

struct ModelInfo {
  std::vector<std::pair<std::string, int64_t>> params_by_kind;  // kinds with any parameters
  int64_t parameters = 0;
  int64_t global_layers = 0, kv_consumers = 0;
  int64_t seq_len = 0;                      // text tokens per row the figures below assume
  // Forward FLOPs per text token (meta positions are paid for by the text tokens):
  double matmul_flops = 0;                  // 2 · multiply-adds of every Linear incl. lm_head
  double attention_flops = 0;               // 2 · nh · (hd + vd) per unmasked (query, key) pair
  // Model FLOPs: recomputation is not counted (it is work the hardware does, not the model).
  double train_flops() const { return 3 * (matmul_flops + attention_flops); }  // fwd + bwd
};

ModelInfo describe_model(const ModelConfig& c, int64_t seq_len);
std::string format_model_info(const ModelInfo& info);

// Unmasked (query, key) pairs of one attention layer over S = M + T positions.
int64_t attention_pairs(bool global, int64_t S, int64_t window, int64_t meta);

}  // namespace hymba
