// The model's sizes under their HYMBA_SPEC §1 names, for one batch shape and one tensor-parallel
// rank. Unpack with a structured binding where a function needs them:
// `const auto& [B, T, M, S, BS, ...] = dims;`.
#pragma once

#include <cstdint>

#include "config/config.h"

namespace hymba {

// With tensor parallelism over tp ranks, E, I, V, nh and nkv are one rank's share: E/tp Mamba
// channels (and attention output columns), I/tp MLP columns, nh/tp query and nkv/tp KV heads,
// and ceil(V/tp) vocabulary rows (the last rank's chunk may end in padding). H, R, N, K, hd and
// vd are never split.
struct Dims {
  int64_t B, T, M, S, BS;  // batch rows, text tokens, meta tokens, S = M + T, B·S
  int64_t H, E, I, V;      // hidden, Mamba inner (= attention output), MLP, vocabulary
  int64_t R, N, K;         // dt rank, state size, conv width
  int64_t nh, nkv, hd, vd; // query heads, KV heads, q/k head dim, v head dim
};

// tp: the number of tensor-parallel ranks (config validation has checked that it divides the
// heads, the KV heads and the widths).
inline Dims make_dims(const ModelConfig& c, int64_t batch, int64_t seq_len, int64_t tp = 1) {
  const int64_t M = c.num_memory_tokens, S = M + seq_len;
  return {batch, seq_len, M, S, batch * S,
          c.hidden_size, c.inner_size() / tp, c.intermediate_size / tp, (c.vocab_size + tp - 1) / tp,
          c.mamba_dt_rank, c.mamba_d_state, c.mamba_d_conv,
          c.num_attention_heads / tp, c.num_key_value_heads / tp, c.head_dim(), c.v_head_dim()};
}

}  // namespace hymba
