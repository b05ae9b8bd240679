// The model summary that `hymba-train CONFIG --info` prints: parameters per tensor kind, the
// activation plan's memory per token, and model FLOPs per token.
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
  Recompute recompute = Recompute::none;    // the level the memory figures assume
  double saved_bytes_per_token = 0;         // kept from forward for backward (fp32)
  double scratch_bytes_per_token = 0;       // backward scratch, recomputed buffers and logits
                                            // (fp32), not per layer
  // Forward FLOPs per text token (meta positions are paid for by the text tokens):
  double matmul_flops = 0;                  // 2 · multiply-adds of every Linear incl. lm_head
  double attention_flops = 0;               // 2 · nh · (hd + vd) per unmasked (query, key) pair
  // Model FLOPs: recomputation is not counted (it is work the hardware does, not the model).
  double train_flops() const { return 3 * (matmul_flops + attention_flops); }  // fwd + bwd
};

ModelInfo describe_model(const ModelConfig& c, int64_t seq_len, Recompute recompute = Recompute::none);
std::string format_model_info(const ModelInfo& info);

// Unmasked (query, key) pairs of one attention layer over S = M + T positions.
int64_t attention_pairs(bool global, int64_t S, int64_t window, int64_t meta);

}  // namespace hymba
