// Per-layer roles derived from the config (HYMBA_SPEC §2.5): which heads the layer runs
// (model.mixer), global or sliding-window attention, and the cross-layer KV-sharing role.
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.h"

namespace hymba {

enum class KvRole {
  standalone,  // computes and uses its own k, v
  producer,    // computes k, v; later consumer layers of its group read them
  consumer,    // no k/v rows in in_proj; reads its producer's rotated k and v
};

struct LayerSpec {
  // The heads this layer runs: both in the official hybrid model; one of them in the
  // model.mixer ablations, whose block output is then that branch's normalised output alone.
  bool has_attention = true;
  bool has_mamba = true;
  bool hybrid() const { return has_attention && has_mamba; }  // both: the fusion averages them
  bool global = false;       // plain causal attention, else sliding window + meta tokens
  KvRole kv_role = KvRole::standalone;
  int64_t kv_source = 0;     // layer whose k, v this layer attends over (itself unless consumer)
  bool kv_group_last = true; // last layer reading kv_source's k, v: its backward starts the
                             // group's dK/dV accumulation (layers run backward in reverse)
  int64_t in_proj_rows = 0;  // D_in: q | k | v (attention; a consumer has only q) + x | z (Mamba)
};

// Requires a validated config. KV-reuse groups must be runs of consecutive layers (checked
// by validation), so one dK/dV accumulator serves every group in turn. Without attention heads
// (mixer mamba) no layer is global (global_attn_idx is ignored) and validation requires
// kv_reuse_group to be empty.
std::vector<LayerSpec> plan_layers(const ModelConfig& c);

}  // namespace hymba
