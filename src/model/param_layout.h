// Where every parameter lives. Parameters, gradients and optimizer moments each sit in one flat
// buffer with the same layout; a tensor is an (offset, shape) in it, named as in the official
// HF state_dict (HYMBA_SPEC §3), so export and checkpoints are a walk over this list.
#pragma once

#include <cstdint>
#include <string>
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

// Offsets of one decoder layer's tensors. P = int64_t (offsets) or T* (views into a buffer).
template <class P>
struct LayerParams {
  P input_norm;   // [H]            input_layernorm
  P in_proj;      // [D_in, H]      rows: q | k | v | x | z (consumers: q | x | z)
  P conv_w;       // [E, 1, K]
  P conv_b;       // [E]
  P x_proj;       // [R + 2N, E]    rows: dt | B | C
  P dt_proj_w;    // [E, R]
  P dt_proj_b;    // [E]
  P A_log;        // [E, N]
  P D;            // [E]
  P dt_norm;      // [R]
  P B_norm;       // [N]
  P C_norm;       // [N]
  P attn_norm;    // [E]            pre_avg_layernorm1 (β₁)
  P ssm_norm;     // [E]            pre_avg_layernorm2 (β₂)
  P out_proj;     // [H, E]
  P mlp_norm;     // [H]            pre_moe_layernorm
  P gate;         // [I, H]
  P up;           // [I, H]
  P down;         // [H, I]
};

template <class P>
struct ModelParams {
  P embed;       // [V, H]  (tied lm_head)
  P meta;        // [M, H]  memory tokens
  P final_norm;  // [H]
  std::vector<LayerParams<P>> layers;
};

struct ParamLayout {
  std::vector<ParamTensor> tensors;  // in HF order
  ModelParams<int64_t> offsets;
  int64_t count = 0;    // number of parameters (what --info reports)
  int64_t storage = 0;  // buffer length: tensors start on 64-element boundaries (zero padding)
};

ParamLayout build_param_layout(const ModelConfig& c, const std::vector<LayerSpec>& layers);

// Typed pointers into a flat buffer (parameters, gradients or moments) with this layout.
template <class T>
ModelParams<T*> param_views(const ParamLayout& layout, T* base);

}  // namespace hymba
