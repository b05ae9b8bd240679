// The layer code of HymbaModelOn<Backend> (hymba_model.h), included by the file that
// instantiates it for a backend: hymba_model.cpp (CPU), hymba_model_cuda.cpp (GPU). Every kernel
// call goes through the backend object ops_.
#pragma once

#include <algorithm>
#include <type_traits>

#include "core/error.h"
#include "model/host_access.h"
#include "model/hymba_model.h"
#include "model/init.h"

namespace hymba {

namespace {

// Column offsets of the in_proj output slices (HYMBA_SPEC §2.4): q | k | v | x | z. A layer has
// q | k | v only with attention heads (a consumer: q alone), x | z only with Mamba heads; the
// offsets of absent slices are unused. With tensor parallelism each slice is this rank's share
// (its heads, its channels), from the sizes d of one rank.
struct ProjSlices {
  int64_t q = 0, k, v, x, z, width;
};

ProjSlices proj_slices(const Dims& d, const LayerSpec& s, int tp) {
  ProjSlices p;
  p.k = d.nh * d.hd;
  p.v = p.k + d.nkv * d.hd;
  const int64_t kv_end = p.v + d.nkv * d.vd;
  p.x = !s.has_attention ? 0 : s.kv_role == KvRole::consumer ? p.k : kv_end;
  p.z = p.x + d.E;
  p.width = s.has_mamba ? p.z + d.E : p.x;
  HYMBA_ASSERT(p.width * tp == s.in_proj_rows);
  return p;
}

}  // namespace

template <class Backend>
HymbaModelOn<Backend>::HymbaModelOn(const ModelConfig& config, int64_t batch, int64_t seq_len,
                                    int64_t data_parallel, TensorParallel tp, Recompute recompute)
    : cfg_(config),
      tp_(tp),
      recompute_(recompute),
      vocab_(vocab_range(config.vocab_size, tp.layout_rank())),
      plan_(plan_layers(config)),
      layout_(build_param_layout(config, plan_, data_parallel, tp.layout_rank())),
      d_(make_dims(config, batch, seq_len, tp.size)),
      ops_(cfg_, d_, layout_.storage) {
  HYMBA_ASSERT(tp.size == 1 || tp.comm != nullptr);
  inv_freq_ = Backend::to_array(cpu::rope_inv_freq(cfg_.head_dim(), cfg_.rope_theta, cfg_.rope_type == "ntk",
                                                   cfg_.max_position_embeddings, cfg_.orig_max_position_embeddings));
  params = Backend::template make_array<P>(layout_.storage);
  grads = Backend::template make_array<P>(layout_.storage);
  w_ = param_views(layout_, params.data());
  g_ = param_views(layout_, grads.data());
  if constexpr (kComputeCopy) {
    compute_weights_ = Backend::template make_array<F>(layout_.matrices_end());
    wc_ = param_views(layout_, compute_weights_.data(), layout_.matrices_end());
  } else {
    wc_ = w_;
  }
  arena_ = Backend::template make_array<std::byte>(place_arena(a_, d_, plan_, tp_.size, recompute_, nullptr));
  place_arena(a_, d_, plan_, tp_.size, recompute_, arena_.data());
  ids_.assign(d_.B * d_.T, 0);
}

template <class Backend>
ModelMemory HymbaModelOn<Backend>::memory(const ModelConfig& config, int64_t batch, int64_t seq_len,
                                          int64_t data_parallel, TensorParallelRank tp, Recompute recompute) {
  const std::vector<LayerSpec> plan = plan_layers(config);
  const ParamLayout layout = build_param_layout(config, plan, data_parallel, tp);
  const Dims d = make_dims(config, batch, seq_len, tp.size);
  Activations<F, Stat> a;
  const int64_t arena = place_arena(a, d, plan, tp.size, recompute, nullptr);
  ModelMemory m;
  m.weights = 2 * layout.storage * int64_t(sizeof(P)) + (kComputeCopy ? layout.matrices_end() * int64_t(sizeof(F)) : 0);
  m.saved = a.saved;
  m.scratch = arena - a.saved;
  m.kernels = Backend::buffer_bytes(config, d, layout.storage);
  return m;
}

template <class Backend>
void HymbaModelOn<Backend>::init(uint64_t seed) {
  std::vector<P> staging;  // where params live in device memory
  init_params(host_buffer_to_overwrite(params, staging), layout_, cfg_, seed);
  commit_host_buffer(params, staging);
  params_updated();
}

template <class Backend>
void HymbaModelOn<Backend>::params_updated() {
  cast_weights(0, layout_.matrices_end());
}

template <class Backend>
void HymbaModelOn<Backend>::cast_weights(int64_t begin, int64_t n) {
  HYMBA_ASSERT(begin >= 0 && begin + n <= layout_.matrices_end());
  if constexpr (kComputeCopy) ops_.cast(compute_weights_.data() + begin, params.data() + begin, n);
}

template <class Backend>
void HymbaModelOn<Backend>::zero_grads() {
  ops_.zero(grads.data(), layout_.storage);
}

template <class Backend>
double HymbaModelOn<Backend>::run_forward(const int32_t* ids, const int32_t* targets, double grad_scale,
                                  bool want_grad) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  std::copy(ids, ids + B * T, ids_.begin());
  // Vocabulary-parallel: each rank embeds the ids it holds (rank 0 the memory tokens too), and
  // the sum over the ranks is the embedding.
  ops_.embedding_forward(a_.resid[0], ids_.data(), wc_.embed, tp_.rank == 0 ? w_.meta : nullptr, B, T, M, H,
                         c.vocab_size, vocab_);
  tp_sum(a_.resid[0], BS * H);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) layer_forward(l);
  return head_forward(targets, grad_scale, want_grad);
}

template <class Backend>
double HymbaModelOn<Backend>::forward(const int32_t* ids, const int32_t* targets) {
  return run_forward(ids, targets, 0.0, false);
}

template <class Backend>
double HymbaModelOn<Backend>::forward_backward(const int32_t* ids, const int32_t* targets,
                                       double grad_scale, const BucketDone& bucket_done) {
  const ModelConfig& c = cfg_;
  const int64_t L = c.num_hidden_layers;
  const auto done = [&](int64_t b) {
    if (bucket_done) bucket_done(size_t(b));
  };
  const double loss = run_forward(ids, targets, grad_scale, true);
  head_backward();  // the final norm, and the tied lm_head's share of the embedding
  for (int64_t l = L - 1; l >= 0; --l) {
    recompute_for_backward(l);
    layer_backward(l);  // writes layer l's gradients only (a KV consumer adds into scratch)
    done(1 + l);        // its matrices
  }
  ops_.embedding_backward(g_.embed, g_.meta, a_.s.dres, ids_.data(), d_.B, d_.T, d_.M, d_.H,
                     c.pad_token_id, vocab_);
  done(0);
  done(layout_.fp32_bucket);  // the norms, conv, biases, SSM parameters and memory tokens
  return loss;
}

template <class Backend>
void HymbaModelOn<Backend>::layer_forward(int64_t l, bool recomputing) {
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const LayerSpec& spec = plan_[l];
  const LayerParams<F*>& wc = wc_.layers[l];
  LayerActivations<F, Stat>& a = a_.layers[l];
  const ProjSlices p = proj_slices(d_, spec, tp_.size);
  const F* x = a_.resid[l];  // [BS, H]

  // Shared input projection.
  input_norm_forward(l);
  ops_.linear_forward(a.proj, p.width, a.h1, H, wc.in_proj, BS, H, p.width);  // [BS, D_in]

  if (spec.has_attention) attention_heads_forward(l);
  if (spec.has_mamba) mamba_heads_forward(l);

  // out_proj onto the residual stream (row-parallel: each rank adds its channels' share).
  fusion_forward(l);
  start_partial_sum(a.x_mid, x, BS * H);
  ops_.linear_forward(a.x_mid, H, a.fused, E, wc.out_proj, BS, E, H, /*accumulate=*/true);
  tp_sum(a.x_mid, BS * H);

  // SwiGLU MLP onto the residual stream (gate/up column-parallel, down row-parallel).
  mlp_norm_forward(l);
  mlp_hidden_forward(l);
  if (recomputing) return;  // resid[l + 1] already holds the layer's output
  F* x_out = a_.resid[l + 1];
  start_partial_sum(x_out, a.x_mid, BS * H);
  ops_.linear_forward(x_out, H, a.act, I, wc.down, BS, I, H, /*accumulate=*/true);
  tp_sum(x_out, BS * H);
}

template <class Backend>
void HymbaModelOn<Backend>::input_norm_forward(int64_t l) {
  const int64_t BS = d_.BS, H = d_.H;
  LayerActivations<F, Stat>& a = a_.layers[l];
  ops_.rmsnorm_forward(a.h1, H, a.rstd_in, a_.resid[l], H, w_.layers[l].input_norm, BS, H, cfg_.rms_norm_eps);
}

// The average of the normalised branches (a layer with one branch: its norm alone): the second
// norm averages into the first's output in the same pass (the same bits as a separate average).
template <class Backend>
void HymbaModelOn<Backend>::fusion_forward(int64_t l) {
  const int64_t BS = d_.BS, E = d_.E;
  const LayerSpec& spec = plan_[l];
  const LayerParams<P*>& w = w_.layers[l];
  LayerActivations<F, Stat>& a = a_.layers[l];
  if (spec.has_attention) {
    split_norm_forward(a.fused, E, a.rstd_attn, a.attn, E, w.attn_norm, BS, E);
  }
  if (spec.has_mamba) {
    split_norm_forward(a.fused, E, a.rstd_scan, a.scan, E, w.ssm_norm, BS, E, /*average=*/spec.hybrid());
  }
}

template <class Backend>
void HymbaModelOn<Backend>::mlp_norm_forward(int64_t l) {
  const int64_t BS = d_.BS, H = d_.H;
  LayerActivations<F, Stat>& a = a_.layers[l];
  ops_.rmsnorm_forward(a.h2, H, a.rstd_mid, a.x_mid, H, w_.layers[l].mlp_norm, BS, H, cfg_.rms_norm_eps);
}

template <class Backend>
void HymbaModelOn<Backend>::mlp_hidden_forward(int64_t l) {
  const int64_t BS = d_.BS, H = d_.H, I = d_.I;
  const LayerParams<F*>& wc = wc_.layers[l];
  LayerActivations<F, Stat>& a = a_.layers[l];
  ops_.linear_forward(a.gate, I, a.h2, H, wc.gate, BS, H, I);
  ops_.linear_forward(a.up, I, a.h2, H, wc.up, BS, H, I);
  ops_.swiglu_forward(a.act, a.gate, a.up, BS * I);
}

// The recomputed buffers are shared by all layers (place_activations), so each layer's are
// rebuilt just before its backward, from what the level keeps: the same kernels on the same
// inputs, so the same bits as in forward (the statistics they rewrite too).
template <class Backend>
void HymbaModelOn<Backend>::recompute_for_backward(int64_t l) {
  switch (recompute_) {
    case Recompute::none:
      return;
    case Recompute::all:
      layer_forward(l, /*recomputing=*/true);
      return;
    case Recompute::norms:
    case Recompute::mlp:
      input_norm_forward(l);
      fusion_forward(l);
      mlp_norm_forward(l);
      if (recompute_ == Recompute::mlp) mlp_hidden_forward(l);
      return;
  }
}

template <class Backend>
void HymbaModelOn<Backend>::start_partial_sum(F* dst, const F* x, int64_t n) {
  if (tp_.rank == 0) ops_.copy(dst, x, n);
  else ops_.zero(dst, n);
}

template <class Backend>
void HymbaModelOn<Backend>::split_norm_forward(F* y, int64_t ldy, Stat* rstd, const F* x, int64_t ldx,
                                               const P* w, int64_t rows, int64_t dim, bool average) {
  const double eps = cfg_.rms_norm_eps;
  if (tp_.size == 1) {
    ops_.rmsnorm_forward(y, ldy, rstd, x, ldx, w, rows, dim, eps, average);
    return;
  }
  ops_.rmsnorm_sum_squares(a_.row_sums, x, ldx, rows, dim);
  tp_sum(a_.row_sums, rows);
  ops_.rmsnorm_forward_from_sums(y, ldy, rstd, x, ldx, w, a_.row_sums, rows, dim, dim * tp_.size, eps, average);
}

template <class Backend>
void HymbaModelOn<Backend>::split_norm_backward(F* dx, int64_t lddx, P* dw, const F* dy, int64_t lddy,
                                                const F* x, int64_t ldx, const P* w, const Stat* rstd,
                                                int64_t rows, int64_t dim) {
  if (tp_.size == 1) {
    ops_.rmsnorm_backward(dx, lddx, dw, dy, lddy, x, ldx, w, rstd, rows, dim);
    return;
  }
  ops_.rmsnorm_backward_dots(a_.row_sums, dy, lddy, x, ldx, w, rstd, rows, dim);
  tp_sum(a_.row_sums, rows);
  ops_.rmsnorm_backward_from_dots(dx, lddx, dw, dy, lddy, x, ldx, w, rstd, a_.row_sums, rows, dim, dim * tp_.size);
}

// Attention heads: RoPE on q (and k), then attention over this layer's or the producer's k, v.
template <class Backend>
void HymbaModelOn<Backend>::attention_heads_forward(int64_t l) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const LayerSpec& spec = plan_[l];
  LayerActivations<F, Stat>& a = a_.layers[l];
  const ProjSlices p = proj_slices(d_, spec, tp_.size);
  ops_.rope_forward(a.q, a.proj + p.q, p.width, inv_freq_.data(), B, S, nh, hd);
  if (spec.kv_role != KvRole::consumer) {
    ops_.rope_forward(a.k, a.proj + p.k, p.width, inv_freq_.data(), B, S, nkv, hd);
  }
  const LayerActivations<F, Stat>& src = a_.layers[spec.kv_source];
  const ProjSlices sp = proj_slices(d_, plan_[spec.kv_source], tp_.size);
  const cpu::AttentionShape shape{B, S, nh, nkv, hd, vd, spec.global, c.sliding_window,
                             c.num_memory_tokens};
  ops_.attention_forward(a.attn, a.lse, a.q, src.k, src.proj + sp.v, sp.width, shape);  // [BS, E]
}

// Mamba heads: causal conv + SiLU, x_proj, the dt/B/C norms, dt_proj, gated selective scan.
template <class Backend>
void HymbaModelOn<Backend>::mamba_heads_forward(int64_t l) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const double eps = c.rms_norm_eps;
  const LayerParams<P*>& w = w_.layers[l];
  const LayerParams<F*>& wc = wc_.layers[l];
  LayerActivations<F, Stat>& a = a_.layers[l];
  const ProjSlices p = proj_slices(d_, plan_[l], tp_.size);
  const XProjColumns xc = x_proj_columns(R, N);  // padded pieces: the GEMMs' operands aligned
  ops_.conv_silu_forward(a.u, a.proj + p.x, p.width, w.conv_w, w.conv_b, B, S, E, K);
  // x_proj reads every channel: each rank's product is a partial sum over its channels.
  ops_.linear_forward(a.ssm, xc.width, a.u, E, wc.x_proj, BS, E, xc.width);
  tp_sum(a.ssm, BS * xc.width);
  ops_.rmsnorm_forward(a.dt, xc.dt_width, a.rstd_dt, a.ssm, xc.width, w.dt_norm, BS, R, eps);
  ops_.rmsnorm_forward(a.Bm, N, a.rstd_B, a.ssm + xc.B, xc.width, w.B_norm, BS, N, eps);
  ops_.rmsnorm_forward(a.Cm, N, a.rstd_C, a.ssm + xc.C, xc.width, w.C_norm, BS, N, eps);
  // The bias goes inside the scan; dt's padding columns (zero) meet dt_proj's zero columns.
  ops_.linear_forward(a.delta, E, a.dt, xc.dt_width, wc.dt_proj_w, BS, xc.dt_width, E);
  ops_.selective_scan_forward(a.scan, a.scan_states, scan_inputs(l), scan_shape());  // [BS, E]
}

// Layer l's scan operands: the model's scan starts from zero at the first meta token and has no
// document resets (HYMBA_SPEC §2.6).
template <class Backend>
cpu::ScanInputs<typename Backend::Act, typename Backend::Param> HymbaModelOn<Backend>::scan_inputs(
    int64_t l) const {
  const LayerParams<P*>& w = w_.layers[l];
  const LayerActivations<F, Stat>& a = a_.layers[l];
  const ProjSlices p = proj_slices(d_, plan_[l], tp_.size);
  return {a.u, a.delta, a.proj + p.z, p.width, a.Bm, a.Cm, w.dt_proj_b, w.A_log, w.D};
}

// On entry a_.s.dres holds dL/d(a_.resid[l+1]); on exit dL/d(a_.resid[l]).
template <class Backend>
void HymbaModelOn<Backend>::layer_backward(int64_t l) {
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const LayerSpec& spec = plan_[l];
  const LayerParams<P*>& w = w_.layers[l];
  const LayerParams<F*>& wc = wc_.layers[l];
  const LayerParams<P*>& g = g_.layers[l];
  const LayerActivations<F, Stat>& a = a_.layers[l];
  const ProjSlices p = proj_slices(d_, spec, tp_.size);
  BackwardScratch<F>& s = a_.s;

  // MLP: the residual gradient passes through unchanged and also flows into the norm. Each rank's
  // dh is a partial sum over its MLP columns.
  ops_.linear_backward(s.dact, I, g.down, s.dres, H, a.act, I, wc.down, BS, I, H);
  ops_.swiglu_backward(s.dgate, s.dup, s.dact, a.gate, a.up, BS * I);
  ops_.linear_backward(s.dh, H, g.gate, s.dgate, I, a.h2, H, wc.gate, BS, H, I);
  ops_.linear_backward(s.dh, H, g.up, s.dup, I, a.h2, H, wc.up, BS, H, I, /*accumulate_dx=*/true);
  tp_sum(s.dh, BS * H);
  ops_.rmsnorm_backward(s.dres, H, g.mlp_norm, s.dh, H, a.x_mid, H, w.mlp_norm, a.rstd_mid, BS, H,
                   /*accumulate_dx=*/true);

  // out_proj and the fusion average: each of two branches' norm outputs gets half the gradient,
  // a factor of the dx GEMM (a power of two, so the same bits as halving its result).
  ops_.linear_backward(s.dfused, E, g.out_proj, s.dres, H, a.fused, E, wc.out_proj, BS, E, H,
                       /*accumulate_dx=*/false, /*dx_alpha=*/spec.hybrid() ? 0.5 : 1.0);
  if (spec.has_attention) {
    split_norm_backward(s.dattn, E, g.attn_norm, s.dfused, E, a.attn, E, w.attn_norm, a.rstd_attn, BS, E);
  }
  if (spec.has_mamba) {
    split_norm_backward(s.dscan, E, g.ssm_norm, s.dfused, E, a.scan, E, w.ssm_norm, a.rstd_scan, BS, E);
  }

  // Each branch writes its own columns of dproj.
  if (spec.has_mamba) mamba_heads_backward(l);
  if (spec.has_attention) attention_heads_backward(l);

  // Shared input projection and its norm, onto the residual gradient (dh: a partial sum over
  // this rank's heads and channels).
  ops_.linear_backward(s.dh, H, g.in_proj, s.dproj, p.width, a.h1, H, wc.in_proj, BS, H, p.width);
  tp_sum(s.dh, BS * H);
  ops_.rmsnorm_backward(s.dres, H, g.input_norm, s.dh, H, a_.resid[l], H, w.input_norm, a.rstd_in, BS,
                   H, /*accumulate_dx=*/true);
}

// From dscan [BS, E] to the x | z columns of dproj, last op first. dz lands directly in its slice.
template <class Backend>
void HymbaModelOn<Backend>::mamba_heads_backward(int64_t l) {
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const LayerParams<P*>& w = w_.layers[l];
  const LayerParams<F*>& wc = wc_.layers[l];
  const LayerParams<P*>& g = g_.layers[l];
  const LayerActivations<F, Stat>& a = a_.layers[l];
  const ProjSlices p = proj_slices(d_, plan_[l], tp_.size);
  BackwardScratch<F>& s = a_.s;
  const cpu::ScanGrads<F, P> grads{s.du,         s.ddelta, s.dproj + p.z, p.width, s.dBm,
                                   s.dCm,        g.dt_proj_b, g.A_log,    g.D};
  ops_.selective_scan_backward(grads, s.dscan, scan_inputs(l), a.scan_states, scan_shape());
  const XProjColumns xc = x_proj_columns(R, N);
  ops_.linear_backward(s.ddt, xc.dt_width, g.dt_proj_w, s.ddelta, E, a.dt, xc.dt_width, wc.dt_proj_w, BS,
                       xc.dt_width, E);
  // dt, B and C feed every channel: each rank holds a partial sum over its channels.
  tp_sum(s.ddt, BS * xc.dt_width);
  tp_sum(s.dBm, BS * N);
  tp_sum(s.dCm, BS * N);
  ops_.rmsnorm_backward(s.dssm, xc.width, g.dt_norm, s.ddt, xc.dt_width, a.ssm, xc.width, w.dt_norm,
                   a.rstd_dt, BS, R);
  ops_.rmsnorm_backward(s.dssm + xc.B, xc.width, g.B_norm, s.dBm, N, a.ssm + xc.B, xc.width, w.B_norm,
                   a.rstd_B, BS, N);
  ops_.rmsnorm_backward(s.dssm + xc.C, xc.width, g.C_norm, s.dCm, N, a.ssm + xc.C, xc.width,
                   w.C_norm, a.rstd_C, BS, N);
  ops_.linear_backward(s.du, E, g.x_proj, s.dssm, xc.width, a.u, E, wc.x_proj, BS, E, xc.width,
                  /*accumulate_dx=*/true);  // u feeds both x_proj and the scan
  ops_.conv_silu_backward(s.dproj + p.x, p.width, g.conv_w, g.conv_b, s.du, a.proj + p.x, p.width,
                          w.conv_w, w.conv_b, B, S, E, K);
}

// From dattn [BS, E] to the q | k | v columns of dproj. A KV group's dK/dV sum over all its
// layers: the last layer of the group (the first to run backward) starts the sum, the producer
// finishes it.
template <class Backend>
void HymbaModelOn<Backend>::attention_heads_backward(int64_t l) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const LayerSpec& spec = plan_[l];
  const LayerActivations<F, Stat>& a = a_.layers[l];
  const ProjSlices p = proj_slices(d_, spec, tp_.size);
  BackwardScratch<F>& s = a_.s;
  if (spec.kv_group_last) {
    ops_.zero(s.dk, BS * nkv * hd);
    ops_.zero(s.dv, BS * nkv * vd);
  }
  const LayerActivations<F, Stat>& src = a_.layers[spec.kv_source];
  const ProjSlices sp = proj_slices(d_, plan_[spec.kv_source], tp_.size);
  const cpu::AttentionShape shape{B, S, nh, nkv, hd, vd, spec.global, c.sliding_window,
                             c.num_memory_tokens};
  ops_.attention_backward(s.dq, s.dk, s.dv, s.dattn, a.q, src.k, src.proj + sp.v, sp.width, a.attn,
                     a.lse, shape);
  ops_.rope_backward(s.dproj + p.q, p.width, s.dq, inv_freq_.data(), B, S, nh, hd);
  if (spec.kv_role != KvRole::consumer) {
    ops_.rope_backward(s.dproj + p.k, p.width, s.dk, inv_freq_.data(), B, S, nkv, hd);
    ops_.copy_rows(s.dproj + p.v, p.width, s.dv, nkv * vd, BS, nkv * vd);
  }
}

// Final norm on the text rows only (meta rows are dropped right after it, HYMBA_SPEC §2.1), tied
// lm_head, and the loss. With want_grad the logits become dlogits in the same pass.
template <class Backend>
double HymbaModelOn<Backend>::head_forward(const int32_t* targets, double grad_scale, bool want_grad) {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const F* x = a_.resid[c.num_hidden_layers];  // [B, S, H]
  for (int64_t b = 0; b < B; ++b) {
    ops_.rmsnorm_forward(a_.hf + b * T * H, H, a_.rstd_final + b * T, x + (b * S + M) * H, H,
                    w_.final_norm, T, H, c.rms_norm_eps);
  }
  // [B·T, V]: this rank's vocabulary ids, then padding columns (zero rows of the table)
  ops_.linear_forward(a_.logits, V, a_.hf, H, wc_.embed, B * T, H, V);
  if (!targets) return 0.0;
  F* dlogits = want_grad ? a_.logits : nullptr;
  if (!vocab_padded()) return ops_.cross_entropy(dlogits, a_.logits, targets, B * T, V, grad_scale);
  // Every rank's row statistics over its ids [tp, B·T, 3], gathered (with tensor parallelism),
  // then each rank finishes the loss and its columns' gradient (zero on the padding columns).
  const int64_t rows = B * T, stats = rows * cpu::kCrossEntropyStats;
  ops_.cross_entropy_partials(a_.ce_stats + tp_.rank * stats, a_.logits, V, vocab_, targets, rows, c.vocab_size);
  if (tp_.size > 1) {
    tp_.comm->all_gather_in_place(a_.ce_stats, stats);
    tp_.comm->wait();  // before the loss is read back: a peer that died fails here, on the deadline
  }
  return ops_.cross_entropy_from_partials(dlogits, a_.logits, V, vocab_, a_.ce_stats, tp_.size, targets, rows,
                                          grad_scale);
}

template <class Backend>
const float* HymbaModelOn<Backend>::host_logits() {
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  const int64_t rows = B * T;
  if (!vocab_padded()) return ops_.host_floats(a_.logits, rows * V, logits_host_);
  // Every rank's [B·T, V] columns, gathered [tp, B·T, V] (with tensor parallelism), then placed
  // at their ids; the padding columns are left out.
  const F* all = a_.logits;
  if (tp_.size > 1) {
    if (logits_gathered_.size() == 0) logits_gathered_ = Backend::template make_array<F>(tp_.size * rows * V);
    ops_.copy(logits_gathered_.data() + tp_.rank * rows * V, a_.logits, rows * V);
    tp_.comm->all_gather_in_place(logits_gathered_.data(), rows * V);
    tp_.comm->wait();
    all = logits_gathered_.data();
  }
  std::vector<float> staging;
  const float* gathered = ops_.host_floats(all, tp_.size * rows * V, staging);
  const int64_t vocab = cfg_.vocab_size;
  logits_host_.assign(size_t(rows * vocab), 0.0f);
  for (int q = 0; q < tp_.size; ++q) {
    const cpu::VocabRange ids = vocab_range(vocab, {q, tp_.size});
    for (int64_t r = 0; r < rows; ++r) {
      const float* from = gathered + (q * rows + r) * V;
      std::copy(from, from + (ids.end - ids.begin), logits_host_.data() + r * vocab + ids.begin);
    }
  }
  return logits_host_.data();
}

template <class Backend>
void HymbaModelOn<Backend>::head_backward() {
  const ModelConfig& c = cfg_;
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d_;
  ops_.linear_backward(a_.s.dhf, H, g_.embed, a_.logits, V, a_.hf, H, wc_.embed, B * T, H, V);
  tp_sum(a_.s.dhf, B * T * H);  // a partial sum over this rank's vocabulary rows
  // Meta rows do not reach the loss: their residual gradient starts at zero.
  ops_.zero(a_.s.dres, BS * H);
  const F* x = a_.resid[c.num_hidden_layers];
  for (int64_t b = 0; b < B; ++b) {
    ops_.rmsnorm_backward(a_.s.dres + (b * S + M) * H, H, g_.final_norm, a_.s.dhf + b * T * H, H,
                     x + (b * S + M) * H, H, w_.final_norm, a_.rstd_final + b * T, T, H);
  }
}

}  // namespace hymba
