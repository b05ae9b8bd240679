// The model's sizes under their HYMBA_SPEC §1 names, for one batch shape and one tensor-parallel
// rank. Unpack with a structured binding where a function needs them:
// `const auto& [B, T, M, S, BS, ...] = dims;`.
#pragma once

#include <cstdint>

#include "config/config.h"

namespace hymba {

// The length of each tensor-parallel rank's chunk of a dimension of `length` split `size` ways:
// ceil(length / size), rounded up to a multiple of `multiple` (the last chunks end in padding).
inline int64_t split_chunk(int64_t length, int64_t size, int64_t multiple = 1) {
  const int64_t chunk = (length + size - 1) / size;
  return (chunk + multiple - 1) / multiple * multiple;
}

// Vocabulary rows (embedding rows, logit columns) are held in chunks of a multiple of 64, with
// one rank as with several: the lm_head GEMMs' width is then aligned, where an odd vocabulary
// (32001) puts cuBLASLt on its align-1 kernels. The rows past the vocabulary are zero padding
// that no id reads and the loss leaves out.
inline constexpr int64_t kVocabRowMultiple = 64;
inline int64_t vocab_rows_per_rank(int64_t vocab_size, int64_t tp) {
  return split_chunk(vocab_size, tp, kVocabRowMultiple);
}

// x_proj's output row dt | B | C (HYMBA_SPEC §2.6) with each piece padded to a multiple of 8
// elements: x_proj's weight holds zero rows after each piece and dt_proj's weight zero columns
// after its R, so that every GEMM dimension and leading dimension of the two projections is a
// multiple of 16 bytes. Unpadded (R = 100, R + 2N = 132 at 1.5B) cuBLASLt runs them on its
// align-2 kernels. The padding columns of the activations hold zeros (model/activations.h).
inline constexpr int64_t kProjPieceMultiple = 8;
struct XProjColumns {
  int64_t dt_width;  // the dt piece padded: dt_proj's input width (Rp)
  int64_t B, C;      // where the B and C pieces start
  int64_t width;     // the padded row (X)
};
inline XProjColumns x_proj_columns(int64_t R, int64_t N) {
  const int64_t Rp = split_chunk(R, 1, kProjPieceMultiple), Np = split_chunk(N, 1, kProjPieceMultiple);
  return {Rp, Rp, Rp + Np, Rp + 2 * Np};
}

// With tensor parallelism over tp ranks, E, I, V, nh and nkv are one rank's share: E/tp Mamba
// channels (and attention output columns), I/tp MLP columns, nh/tp query and nkv/tp KV heads,
// and vocab_rows_per_rank vocabulary rows (V: with padding, also with one rank). H, R, N, K, hd
// and vd are never split.
struct Dims {
  int64_t B, T, M, S, BS;  // batch rows, text tokens, meta tokens, S = M + T, B·S
  int64_t H, E, I, V;      // hidden, Mamba inner (= attention output), MLP, vocabulary rows
  int64_t R, N, K;         // dt rank, state size, conv width
  int64_t nh, nkv, hd, vd; // query heads, KV heads, q/k head dim, v head dim
};

// tp: the number of tensor-parallel ranks (config validation has checked that it divides the
// heads, the KV heads and the widths).
inline Dims make_dims(const ModelConfig& c, int64_t batch, int64_t seq_len, int64_t tp = 1) {
  const int64_t M = c.num_memory_tokens, S = M + seq_len;
  return {batch, seq_len, M, S, batch * S,
          c.hidden_size, c.inner_size() / tp, c.intermediate_size / tp, vocab_rows_per_rank(c.vocab_size, tp),
          c.mamba_dt_rank, c.mamba_d_state, c.mamba_d_conv,
          c.num_attention_heads / tp, c.num_key_value_heads / tp, c.head_dim(), c.v_head_dim()};
}

}  // namespace hymba
