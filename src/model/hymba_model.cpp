#include "model/hymba_model.h"

#include <algorithm>

#include "core/error.h"
#include "cpu/attention.h"
#include "cpu/conv_silu.h"
#include "cpu/cross_entropy.h"
#include "cpu/embedding.h"
#include "cpu/gemm.h"
#include "cpu/parallel.h"
#include "cpu/rmsnorm.h"
#include "cpu/rope.h"
#include "cpu/selective_scan.h"
#include "cpu/swiglu.h"
#include "model/init.h"

namespace hymba {

using namespace cpu;

namespace {

// Column offsets of the in_proj output slices (HYMBA_SPEC §2.4): q | k | v | x | z. A layer has
// q | k | v only with attention heads (a consumer: q alone), x | z only with Mamba heads; the
// offsets of absent slices are unused.
struct ProjSlices {
  int64_t q = 0, k, v, x, z, width;
};

ProjSlices proj_slices(const ModelConfig& c, const LayerSpec& s) {
  const int64_t H = c.hidden_size, E = c.inner_size();
  ProjSlices p;
  p.k = H;  // q is nh·hd = H wide
  p.v = p.k + c.num_key_value_heads * c.head_dim();
  const int64_t kv_end = p.v + c.num_key_value_heads * c.v_head_dim();
  p.x = !s.has_attention ? 0 : s.kv_role == KvRole::consumer ? H : kv_end;
  p.z = p.x + E;
  p.width = s.has_mamba ? p.z + E : p.x;
  HYMBA_ASSERT(p.width == s.in_proj_rows);
  return p;
}

template <class F>
void copy_rows(F* dst, int64_t ld_dst, const F* src, int64_t ld_src, int64_t rows, int64_t cols) {
#pragma omp parallel for schedule(static) if (rows * cols >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) std::copy(src + r * ld_src, src + r * ld_src + cols, dst + r * ld_dst);
}

}  // namespace

template <class F>
HymbaModel<F>::HymbaModel(const ModelConfig& config, int64_t batch, int64_t seq_len)
    : cfg_(config),
      plan_(plan_layers(config)),
      layout_(build_param_layout(config, plan_)),
      d_(make_dims(config, batch, seq_len)) {
  inv_freq_ = rope_inv_freq(cfg_.head_dim(), cfg_.rope_theta, cfg_.rope_type == "ntk",
                            cfg_.max_position_embeddings, cfg_.orig_max_position_embeddings);
  params.assign(layout_.storage, F(0));
  grads.assign(layout_.storage, F(0));
  w_ = param_views(layout_, params.data());
  g_ = param_views(layout_, grads.data());
  arena_.assign(place_activations<F>(a_, cfg_, plan_, d_.B, d_.T, nullptr), F(0));
  place_activations(a_, cfg_, plan_, d_.B, d_.T, arena_.data());
  ids_.assign(d_.B * d_.T, 0);
}

template <class F>
void HymbaModel<F>::init(uint64_t seed) {
  init_params(params.data(), layout_, cfg_, seed);
}

template <class F>
void HymbaModel<F>::zero_grads() {
  std::fill(grads.begin(), grads.end(), F(0));
}

template <class F>
double HymbaModel<F>::run_forward(const int32_t* ids, const int32_t* targets, double grad_scale,
                                  bool want_grad) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  std::copy(ids, ids + B * T, ids_.begin());
  embedding_forward(a_.resid[0], ids_.data(), w_.embed, w_.meta, B, T, M, H, V);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) layer_forward(l);
  return head_forward(targets, grad_scale, want_grad);
}

template <class F>
double HymbaModel<F>::forward(const int32_t* ids, const int32_t* targets) {
  return run_forward(ids, targets, 0.0, false);
}

template <class F>
double HymbaModel<F>::forward_backward(const int32_t* ids, const int32_t* targets,
                                       double grad_scale) {
  const ModelConfig& c = cfg_;
  const double loss = run_forward(ids, targets, grad_scale, true);
  head_backward();
  for (int64_t l = c.num_hidden_layers - 1; l >= 0; --l) layer_backward(l);
  embedding_backward(g_.embed, g_.meta, a_.s.dres, ids_.data(), d_.B, d_.T, d_.M, d_.H,
                     c.pad_token_id);
  return loss;
}

template <class F>
void HymbaModel<F>::layer_forward(int64_t l) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const double eps = c.rms_norm_eps;
  const LayerSpec& spec = plan_[l];
  const LayerParams<F*>& w = w_.layers[l];
  LayerActivations<F>& a = a_.layers[l];
  const ProjSlices p = proj_slices(c, spec);
  const F* x = a_.resid[l];  // [BS, H]

  // Shared input projection.
  rmsnorm_forward(a.h1, H, a.rstd_in, x, H, w.input_norm, BS, H, eps);
  linear_forward(a.proj, p.width, a.h1, H, w.in_proj, BS, H, p.width);  // [BS, D_in]

  if (spec.has_attention) attention_heads_forward(l);
  if (spec.has_mamba) mamba_heads_forward(l);

  // Fusion: the average of the normalised branches (a layer with one branch: its norm alone),
  // then out_proj onto the residual stream.
  const bool both = spec.has_attention && spec.has_mamba;
  if (spec.has_attention) {
    rmsnorm_forward(a.fused, E, a.rstd_attn, a.attn, E, w.attn_norm, BS, E, eps);
  }
  if (spec.has_mamba) {
    rmsnorm_forward(both ? a_.n_scan : a.fused, E, a.rstd_scan, a.scan, E, w.ssm_norm, BS, E, eps);
  }
  if (both) {
#pragma omp parallel for schedule(static) if (BS * E >= kMinParallelWork)
    for (int64_t i = 0; i < BS * E; ++i) a.fused[i] = (a.fused[i] + a_.n_scan[i]) * F(0.5);
  }
  std::copy(x, x + BS * H, a.x_mid);
  linear_forward(a.x_mid, H, a.fused, E, w.out_proj, BS, E, H, /*accumulate=*/true);

  // SwiGLU MLP onto the residual stream.
  rmsnorm_forward(a.h2, H, a.rstd_mid, a.x_mid, H, w.mlp_norm, BS, H, eps);
  linear_forward(a.gate, I, a.h2, H, w.gate, BS, H, I);
  linear_forward(a.up, I, a.h2, H, w.up, BS, H, I);
  swiglu_forward(a.act, a.gate, a.up, BS * I);
  F* x_out = a_.resid[l + 1];
  std::copy(a.x_mid, a.x_mid + BS * H, x_out);
  linear_forward(x_out, H, a.act, I, w.down, BS, I, H, /*accumulate=*/true);
}

// Attention heads: RoPE on q (and k), then attention over this layer's or the producer's k, v.
template <class F>
void HymbaModel<F>::attention_heads_forward(int64_t l) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const LayerSpec& spec = plan_[l];
  LayerActivations<F>& a = a_.layers[l];
  const ProjSlices p = proj_slices(c, spec);
  rope_forward(a.q, a.proj + p.q, p.width, inv_freq_.data(), B, S, nh, hd);
  if (spec.kv_role != KvRole::consumer) {
    rope_forward(a.k, a.proj + p.k, p.width, inv_freq_.data(), B, S, nkv, hd);
  }
  const LayerActivations<F>& src = a_.layers[spec.kv_source];
  const ProjSlices sp = proj_slices(c, plan_[spec.kv_source]);
  const AttentionShape shape{B, S, nh, nkv, hd, vd, spec.global, c.sliding_window,
                             c.num_memory_tokens};
  attention_forward(a.attn, a.lse, a.q, src.k, src.proj + sp.v, sp.width, shape);  // [BS, E]
}

// Mamba heads: causal conv + SiLU, x_proj, the dt/B/C norms, dt_proj, gated selective scan.
template <class F>
void HymbaModel<F>::mamba_heads_forward(int64_t l) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const double eps = c.rms_norm_eps;
  const LayerParams<F*>& w = w_.layers[l];
  LayerActivations<F>& a = a_.layers[l];
  const ProjSlices p = proj_slices(c, plan_[l]);
  conv_silu_forward(a.u, a.conv_pre, a.proj + p.x, p.width, w.conv_w, w.conv_b, B, S, E, K);
  linear_forward(a.ssm, R + 2 * N, a.u, E, w.x_proj, BS, E, R + 2 * N);
  rmsnorm_forward(a.dt, R, a.rstd_dt, a.ssm, R + 2 * N, w.dt_norm, BS, R, eps);
  rmsnorm_forward(a.Bm, N, a.rstd_B, a.ssm + R, R + 2 * N, w.B_norm, BS, N, eps);
  rmsnorm_forward(a.Cm, N, a.rstd_C, a.ssm + R + N, R + 2 * N, w.C_norm, BS, N, eps);
  linear_forward(a.delta, E, a.dt, R, w.dt_proj_w, BS, R, E);  // bias goes inside the scan
  selective_scan_forward(a.scan, a.u, a.delta, w.dt_proj_b, w.A_log, a.Bm, a.Cm, w.D,
                         a.proj + p.z, p.width, ScanShape{B, S, E, N});  // [BS, E]
}

// On entry a_.s.dres holds dL/d(a_.resid[l+1]); on exit dL/d(a_.resid[l]).
template <class F>
void HymbaModel<F>::layer_backward(int64_t l) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const LayerSpec& spec = plan_[l];
  const LayerParams<F*>& w = w_.layers[l];
  const LayerParams<F*>& g = g_.layers[l];
  const LayerActivations<F>& a = a_.layers[l];
  const ProjSlices p = proj_slices(c, spec);
  BackwardScratch<F>& s = a_.s;

  // MLP: the residual gradient passes through unchanged and also flows into the norm.
  linear_backward(s.dact, I, g.down, s.dres, H, a.act, I, w.down, BS, I, H);
  swiglu_backward(s.dgate, s.dup, s.dact, a.gate, a.up, BS * I);
  linear_backward(s.dh, H, g.gate, s.dgate, I, a.h2, H, w.gate, BS, H, I);
  linear_backward(s.dh, H, g.up, s.dup, I, a.h2, H, w.up, BS, H, I, /*accumulate_dx=*/true);
  rmsnorm_backward(s.dres, H, g.mlp_norm, s.dh, H, a.x_mid, H, w.mlp_norm, a.rstd_mid, BS, H,
                   /*accumulate_dx=*/true);

  // out_proj and the fusion average (each of two branches' norm outputs gets half the gradient).
  linear_backward(s.dfused, E, g.out_proj, s.dres, H, a.fused, E, w.out_proj, BS, E, H);
  if (spec.has_attention && spec.has_mamba) {
#pragma omp parallel for schedule(static) if (BS * E >= kMinParallelWork)
    for (int64_t i = 0; i < BS * E; ++i) s.dfused[i] *= F(0.5);
  }
  if (spec.has_attention) {
    rmsnorm_backward(s.dattn, E, g.attn_norm, s.dfused, E, a.attn, E, w.attn_norm, a.rstd_attn,
                     BS, E);
  }
  if (spec.has_mamba) {
    rmsnorm_backward(s.dscan, E, g.ssm_norm, s.dfused, E, a.scan, E, w.ssm_norm, a.rstd_scan, BS,
                     E);
  }

  // Each branch writes its own columns of dproj.
  if (spec.has_mamba) mamba_heads_backward(l);
  if (spec.has_attention) attention_heads_backward(l);

  // Shared input projection and its norm, onto the residual gradient.
  linear_backward(s.dh, H, g.in_proj, s.dproj, p.width, a.h1, H, w.in_proj, BS, H, p.width);
  rmsnorm_backward(s.dres, H, g.input_norm, s.dh, H, a_.resid[l], H, w.input_norm, a.rstd_in, BS,
                   H, /*accumulate_dx=*/true);
}

// From dscan [BS, E] to the x | z columns of dproj, last op first. dz lands directly in its slice.
template <class F>
void HymbaModel<F>::mamba_heads_backward(int64_t l) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const LayerParams<F*>& w = w_.layers[l];
  const LayerParams<F*>& g = g_.layers[l];
  const LayerActivations<F>& a = a_.layers[l];
  const ProjSlices p = proj_slices(c, plan_[l]);
  BackwardScratch<F>& s = a_.s;
  selective_scan_backward(s.du, s.ddelta, s.dproj + p.z, p.width, s.dBm, s.dCm, g.dt_proj_b,
                          g.A_log, g.D, s.dscan, a.u, a.delta, w.dt_proj_b, w.A_log, a.Bm, a.Cm,
                          w.D, a.proj + p.z, p.width, ScanShape{B, S, E, N});
  linear_backward(s.ddt, R, g.dt_proj_w, s.ddelta, E, a.dt, R, w.dt_proj_w, BS, R, E);
  rmsnorm_backward(s.dssm, R + 2 * N, g.dt_norm, s.ddt, R, a.ssm, R + 2 * N, w.dt_norm,
                   a.rstd_dt, BS, R);
  rmsnorm_backward(s.dssm + R, R + 2 * N, g.B_norm, s.dBm, N, a.ssm + R, R + 2 * N, w.B_norm,
                   a.rstd_B, BS, N);
  rmsnorm_backward(s.dssm + R + N, R + 2 * N, g.C_norm, s.dCm, N, a.ssm + R + N, R + 2 * N,
                   w.C_norm, a.rstd_C, BS, N);
  linear_backward(s.du, E, g.x_proj, s.dssm, R + 2 * N, a.u, E, w.x_proj, BS, E, R + 2 * N,
                  /*accumulate_dx=*/true);  // u feeds both x_proj and the scan
  conv_silu_backward(s.dproj + p.x, p.width, g.conv_w, g.conv_b, s.du, a.proj + p.x, p.width,
                     a.conv_pre, w.conv_w, B, S, E, K);
}

// From dattn [BS, E] to the q | k | v columns of dproj. A KV group's dK/dV sum over all its
// layers: the last layer of the group (the first to run backward) starts the sum, the producer
// finishes it.
template <class F>
void HymbaModel<F>::attention_heads_backward(int64_t l) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const LayerSpec& spec = plan_[l];
  const LayerActivations<F>& a = a_.layers[l];
  const ProjSlices p = proj_slices(c, spec);
  BackwardScratch<F>& s = a_.s;
  if (spec.kv_group_last) {
    std::fill(s.dk, s.dk + BS * nkv * hd, F(0));
    std::fill(s.dv, s.dv + BS * nkv * vd, F(0));
  }
  const LayerActivations<F>& src = a_.layers[spec.kv_source];
  const ProjSlices sp = proj_slices(c, plan_[spec.kv_source]);
  const AttentionShape shape{B, S, nh, nkv, hd, vd, spec.global, c.sliding_window,
                             c.num_memory_tokens};
  attention_backward(s.dq, s.dk, s.dv, s.dattn, a.q, src.k, src.proj + sp.v, sp.width, a.attn,
                     a.lse, shape);
  rope_backward(s.dproj + p.q, p.width, s.dq, inv_freq_.data(), B, S, nh, hd);
  if (spec.kv_role != KvRole::consumer) {
    rope_backward(s.dproj + p.k, p.width, s.dk, inv_freq_.data(), B, S, nkv, hd);
    copy_rows(s.dproj + p.v, p.width, s.dv, nkv * vd, BS, nkv * vd);
  }
}

// Final norm on the text rows only (meta rows are dropped right after it, HYMBA_SPEC §2.1), tied
// lm_head, and the loss. With want_grad the logits become dlogits in the same pass.
template <class F>
double HymbaModel<F>::head_forward(const int32_t* targets, double grad_scale, bool want_grad) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const F* x = a_.resid[c.num_hidden_layers];  // [B, S, H]
  for (int64_t b = 0; b < B; ++b) {
    rmsnorm_forward(a_.hf + b * T * H, H, a_.rstd_final + b * T, x + (b * S + M) * H, H,
                    w_.final_norm, T, H, c.rms_norm_eps);
  }
  linear_forward(a_.logits, V, a_.hf, H, w_.embed, B * T, H, V);  // [B·T, V]
  if (!targets) return 0.0;
  return cross_entropy(want_grad ? a_.logits : static_cast<F*>(nullptr), a_.logits, targets,
                       B * T, V, grad_scale);
}

template <class F>
void HymbaModel<F>::head_backward() {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  linear_backward(a_.s.dhf, H, g_.embed, a_.logits, V, a_.hf, H, w_.embed, B * T, H, V);
  // Meta rows do not reach the loss: their residual gradient starts at zero.
  std::fill(a_.s.dres, a_.s.dres + BS * H, F(0));
  const F* x = a_.resid[c.num_hidden_layers];
  for (int64_t b = 0; b < B; ++b) {
    rmsnorm_backward(a_.s.dres + (b * S + M) * H, H, g_.final_norm, a_.s.dhf + b * T * H, H,
                     x + (b * S + M) * H, H, w_.final_norm, a_.rstd_final + b * T, T, H);
  }
}

template class HymbaModel<float>;
template class HymbaModel<double>;

}  // namespace hymba
