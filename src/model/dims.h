// The model's sizes under their HYMBA_SPEC §1 names, for one batch shape. Unpack with a
// structured binding where a function needs them: `const auto& [B, T, M, S, BS, ...] = dims;`.
#pragma once

#include <cstdint>

#include "config/config.h"

namespace hymba {

struct Dims {
  int64_t B, T, M, S, BS;  // batch rows, text tokens, meta tokens, S = M + T, B·S
  int64_t H, E, I, V;      // hidden, Mamba inner (= attention output), MLP, vocabulary
  int64_t R, N, K;         // dt rank, state size, conv width
  int64_t nh, nkv, hd, vd; // query heads, KV heads, q/k head dim, v head dim
};

inline Dims make_dims(const ModelConfig& c, int64_t batch, int64_t seq_len) {
  const int64_t M = c.num_memory_tokens, S = M + seq_len;
  return {batch, seq_len, M, S, batch * S,
          c.hidden_size, c.inner_size(), c.intermediate_size, c.vocab_size,
          c.mamba_dt_rank, c.mamba_d_state, c.mamba_d_conv,
          c.num_attention_heads, c.num_key_value_heads, c.head_dim(), c.v_head_dim()};
}

}  // namespace hymba
