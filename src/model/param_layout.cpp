#include "model/param_layout.h"

#include "core/error.h"

#ifdef HYMBA_HAVE_CUDA
#include <cuda_bf16.h>
#endif

namespace hymba {

const char* param_kind_name(ParamKind k) {
  switch (k) {
    case ParamKind::embedding: return "embedding";
    case ParamKind::meta: return "meta";
    case ParamKind::norm: return "norm";
    case ParamKind::matrix: return "matrix";
    case ParamKind::conv: return "conv";
    case ParamKind::bias: return "bias";
    case ParamKind::ssm: return "ssm";
  }
  return "?";
}

namespace {

constexpr int64_t kAlign = 64;  // elements: 256 B in fp32, so every tensor is vector-aligned

struct LayoutBuilder {
  ParamLayout& out;
  int64_t bucket_align;
  // Ends the bucket that began at the previous end (or 0): pads storage to bucket_align.
  void end_bucket() {
    const int64_t begin = out.buckets.empty() ? 0 : out.buckets.back().end;
    out.storage = (out.storage + bucket_align - 1) / bucket_align * bucket_align;
    out.buckets.push_back({begin, out.storage});
  }
  int64_t add(std::string name, std::vector<int64_t> shape, ParamKind kind, InitRule init) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    const int64_t offset = out.storage;
    out.tensors.push_back({std::move(name), std::move(shape), offset, numel, kind, init});
    out.count += numel;
    out.storage += (numel + kAlign - 1) / kAlign * kAlign;
    return offset;
  }
};

}  // namespace

ParamLayout build_param_layout(const ModelConfig& c, const std::vector<LayerSpec>& layers,
                               int64_t bucket_multiple) {
  HYMBA_ASSERT(bucket_multiple >= 1);
  const int64_t H = c.hidden_size, E = c.inner_size(), V = c.vocab_size, M = c.num_memory_tokens;
  const int64_t R = c.mamba_dt_rank, N = c.mamba_d_state, K = c.mamba_d_conv;
  const int64_t I = c.intermediate_size;
  ParamLayout layout;
  LayoutBuilder b{layout, kAlign * bucket_multiple};
  using K_ = ParamKind;
  using I_ = InitRule;
  layout.offsets.embed = b.add("model.embed_tokens.weight", {V, H}, K_::embedding, I_::embedding);
  layout.offsets.meta = b.add("model.memory_tokens", {M, H}, K_::meta, I_::unit_normal);
  b.end_bucket();
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string m = p + "mamba.";
    LayerParams<int64_t> o;
    o.input_norm = b.add(p + "input_layernorm.weight", {H}, K_::norm, I_::ones);
    o.in_proj = b.add(m + "in_proj.weight", {layers[l].in_proj_rows, H}, K_::matrix, I_::normal);
    o.out_proj = b.add(m + "out_proj.weight", {H, E}, K_::matrix, I_::normal);
    if (layers[l].has_mamba) {
      o.conv_w = b.add(m + "conv1d.weight", {E, 1, K}, K_::conv, I_::normal);
      o.conv_b = b.add(m + "conv1d.bias", {E}, K_::bias, I_::zeros);
      o.x_proj = b.add(m + "x_proj.0.weight", {R + 2 * N, E}, K_::matrix, I_::normal);
      o.dt_proj_w = b.add(m + "dt_proj.0.weight", {E, R}, K_::matrix, I_::normal);
      o.dt_proj_b = b.add(m + "dt_proj.0.bias", {E}, K_::bias, I_::dt_bias);
      o.A_log = b.add(m + "A_log.0", {E, N}, K_::ssm, I_::a_log);
      o.D = b.add(m + "D.0", {E}, K_::ssm, I_::ones);
      o.dt_norm = b.add(m + "dt_layernorm.weight", {R}, K_::norm, I_::ones);
      o.B_norm = b.add(m + "B_layernorm.weight", {N}, K_::norm, I_::ones);
      o.C_norm = b.add(m + "C_layernorm.weight", {N}, K_::norm, I_::ones);
    }
    if (layers[l].has_attention) {  // the fusion norms, in HF order: attention's first
      o.attn_norm = b.add(m + "pre_avg_layernorm1.weight", {E}, K_::norm, I_::ones);
    }
    if (layers[l].has_mamba) {
      o.ssm_norm = b.add(m + "pre_avg_layernorm2.weight", {E}, K_::norm, I_::ones);
    }
    o.mlp_norm = b.add(p + "pre_moe_layernorm.weight", {H}, K_::norm, I_::ones);
    o.gate = b.add(p + "moe.experts.0.gate_proj.weight", {I, H}, K_::matrix, I_::normal);
    o.up = b.add(p + "moe.experts.0.up_proj.weight", {I, H}, K_::matrix, I_::normal);
    o.down = b.add(p + "moe.experts.0.down_proj.weight", {H, I}, K_::matrix, I_::normal);
    layout.offsets.layers.push_back(o);
    b.end_bucket();
  }
  layout.offsets.final_norm = b.add("model.final_layernorm.weight", {H}, K_::norm, I_::ones);
  b.end_bucket();
  return layout;
}

template <class T>
ModelParams<T*> param_views(const ParamLayout& layout, T* base) {
  const auto at = [base](int64_t offset) { return offset == kAbsent ? nullptr : base + offset; };
  const ModelParams<int64_t>& o = layout.offsets;
  ModelParams<T*> v{at(o.embed), at(o.meta), at(o.final_norm), {}};
  for (const LayerParams<int64_t>& l : o.layers) {
    v.layers.push_back({at(l.input_norm), at(l.in_proj), at(l.conv_w), at(l.conv_b), at(l.x_proj),
                        at(l.dt_proj_w), at(l.dt_proj_b), at(l.A_log), at(l.D), at(l.dt_norm),
                        at(l.B_norm), at(l.C_norm), at(l.attn_norm), at(l.ssm_norm),
                        at(l.out_proj), at(l.mlp_norm), at(l.gate), at(l.up), at(l.down)});
  }
  return v;
}

template ModelParams<float*> param_views<float>(const ParamLayout&, float*);
template ModelParams<double*> param_views<double>(const ParamLayout&, double*);
#ifdef HYMBA_HAVE_CUDA
template ModelParams<__nv_bfloat16*> param_views<__nv_bfloat16>(const ParamLayout&, __nv_bfloat16*);
#endif

}  // namespace hymba
