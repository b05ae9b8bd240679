// Where every parameter lives. Parameters, gradients and optimizer moments each sit in one flat
// buffer with the same layout; a tensor is an (offset, shape) in it, named as in the official
// HF state_dict (HYMBA_SPEC §3), so export and checkpoints are a walk over this list.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "config/config.h"
#include "model/layer_plan.h"

namespace hymba {

// What a tensor is, for weight decay choices and the --info summary.
enum class ParamKind { embedding, meta, norm, matrix, conv, bias, ssm };
const char* param_kind_name(ParamKind k);

// How a tensor starts (HYMBA_SPEC §3 and the dt_init choice of §6).
enum class InitRule {
  normal,     // N(0, initializer_range)
  embedding,  // N(0, initializer_range), row pad_token_id zeroed
  unit_normal,// N(0, 1): memory tokens (torch.randn)
  zeros,
  ones,
  a_log,      // log(1..N) on every row (S4D-real)
  dt_bias,    // zeros (dt_init: zero) or inverse-softplus of log-uniform dt (dt_init: mamba)
};

struct ParamTensor {
  std::string name;            // HF state_dict name
  std::vector<int64_t> shape;  // HF shape
  int64_t offset = 0;          // in elements, into the flat buffer
  int64_t numel = 0;
  ParamKind kind = ParamKind::matrix;
  InitRule init = InitRule::normal;
};

// Offset of a tensor the layer does not have (its branch is off, model.mixer); its view is null.
inline constexpr int64_t kAbsent = -1;

// Offsets of one decoder layer's tensors. P = int64_t (offsets) or T* (views into a buffer).
// Those that start out absent exist only with Mamba heads (conv_w .. C_norm, ssm_norm) or only
// with attention heads (attn_norm): LayerSpec::has_mamba / has_attention.
template <class P>
struct LayerParams {
  static constexpr P absent() {
    if constexpr (std::is_pointer_v<P>) return nullptr;
    else return kAbsent;
  }
  P input_norm;                // [H]            input_layernorm
  P in_proj;                   // [D_in, H]      rows: q | k | v | x | z (LayerSpec::in_proj_rows)
  P conv_w = absent();         // [E, 1, K]
  P conv_b = absent();         // [E]
  P x_proj = absent();         // [R + 2N, E]    rows: dt | B | C
  P dt_proj_w = absent();      // [E, R]
  P dt_proj_b = absent();      // [E]
  P A_log = absent();          // [E, N]
  P D = absent();              // [E]
  P dt_norm = absent();        // [R]
  P B_norm = absent();         // [N]
  P C_norm = absent();         // [N]
  P attn_norm = absent();      // [E]            pre_avg_layernorm1 (β₁)
  P ssm_norm = absent();       // [E]            pre_avg_layernorm2 (β₂)
  P out_proj;                  // [H, E]
  P mlp_norm;                  // [H]            pre_moe_layernorm
  P gate;                      // [I, H]
  P up;                        // [I, H]
  P down;                      // [H, I]
};

template <class P>
struct ModelParams {
  P embed;       // [V, H]  (tied lm_head)
  P meta;        // [M, H]  memory tokens
  P final_norm;  // [H]
  std::vector<LayerParams<P>> layers;
};

// A run of the buffer [begin, end) whose gradients are complete at the same point of backward.
struct ParamRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

struct ParamLayout {
  std::vector<ParamTensor> tensors;  // in HF order
  ModelParams<int64_t> offsets;
  int64_t count = 0;    // number of parameters (what --info reports)
  int64_t storage = 0;  // buffer length: tensors start on 64-element boundaries (zero padding)
  // Buckets, in buffer order, tiling [0, storage): the embedding and memory tokens, then one per
  // decoder layer (bucket 1 + l), then the final norm. Data parallelism reduces and shards the
  // gradients bucket by bucket (parallel/param_shard.h).
  std::vector<ParamRange> buckets;
};

// bucket_multiple: every bucket's length is a multiple of 64·bucket_multiple elements (zero
// padding at its end), so it splits into that many equal, 64-aligned parts: the data-parallel
// size. Tensor offsets, and so the buffer contents, depend on it; what is saved (by name) does not.
ParamLayout build_param_layout(const ModelConfig& c, const std::vector<LayerSpec>& layers,
                               int64_t bucket_multiple = 1);

// Typed pointers into a flat buffer (parameters, gradients or moments) with this layout.
template <class T>
ModelParams<T*> param_views(const ParamLayout& layout, T* base);

}  // namespace hymba
