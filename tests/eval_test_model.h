// Small test models shared by the model, evaluation and generation tests: every code path of the
// real one on (meta tokens, a sliding window shorter than the rows, global layers, cross-layer KV
// sharing, grouped-query attention), yet many forwards run in milliseconds.
#pragma once

#include <cstdint>
#include <memory>

#include "config/config.h"
#include "model/hymba_model.h"

namespace hymba::test {

// Small enough that a double forward takes microseconds, with every code path on: meta tokens,
// global and sliding-window layers, a KV producer with a consumer, GQA (nh = 2·nkv), hd != vd.
inline ModelConfig small_config(int64_t window, int64_t meta, int64_t vocab_size = 11) {
  ModelConfig c;
  c.hidden_size = 16;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.intermediate_size = 24;
  c.vocab_size = vocab_size;
  c.mamba_expand = 2;
  c.mamba_d_state = 4;
  c.mamba_d_conv = 3;
  c.mamba_dt_rank = 2;
  c.num_memory_tokens = meta;
  c.sliding_window = window;
  c.global_attn_idx = {0, 3};
  c.kv_reuse_group = {{1, 2}};
  c.initializer_range = 0.3;  // every path carries signal; logits far from uniform
  c.dt_init = DtInit::zero;   // Δ ≈ softplus(0): the scan's state matters (with Δ ≈ 0.01 the
                              // A_log gradients are so small that rounding noise dominates)
  return c;
}

// The evaluation tests' model: a window shorter than their rows, 2 meta tokens, and the default
// dt init, so argmax decisions have clear margins.
inline ModelConfig eval_test_config(int64_t vocab_size) {
  ModelConfig c = small_config(/*window=*/4, /*meta=*/2, vocab_size);
  c.dt_init = DtInit::mamba;
  return c;
}

// A model of batch shape (B, T) with the parameters of `like` (any batch shape).
inline std::unique_ptr<HymbaModel<float>> same_params(const HymbaModel<float>& like, int64_t B,
                                                      int64_t T) {
  auto m = std::make_unique<HymbaModel<float>>(like.config(), B, T);
  m->params = like.params;
  return m;
}

}  // namespace hymba::test
