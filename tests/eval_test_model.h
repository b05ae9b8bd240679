// A model small enough that the evaluation tests run many forwards in milliseconds, with every
// code path of the real one on: meta tokens, a sliding window shorter than the rows, global
// layers, cross-layer KV sharing, grouped-query attention.
#pragma once

#include <cstdint>
#include <memory>

#include "config/config.h"
#include "model/hymba_model.h"

namespace hymba::test {

inline ModelConfig eval_test_config(int64_t vocab_size) {
  ModelConfig c;
  c.hidden_size = 16;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.intermediate_size = 24;
  c.vocab_size = vocab_size;
  c.mamba_d_state = 4;
  c.mamba_d_conv = 3;
  c.mamba_dt_rank = 2;
  c.num_memory_tokens = 2;
  c.sliding_window = 4;
  c.global_attn_idx = {0, 3};
  c.kv_reuse_group = {{1, 2}};
  c.initializer_range = 0.3;  // logits far from uniform: argmax decisions have clear margins
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
