#include "model/activations.h"

#include "model/dims.h"

#include <algorithm>

namespace hymba {

namespace {

// Hands out consecutive pieces of one buffer. With a null base it only counts, so the same code
// both sizes the arena and places the pointers.
template <class F>
struct Carver {
  F* base;
  int64_t used = 0;
  F* take(int64_t n) {
    F* p = base ? base + used : nullptr;
    used += n;
    return p;
  }
  // Buffers of a branch that is off (model.mixer) take no space and stay null.
  F* take_if(bool present, int64_t n) { return present ? take(n) : nullptr; }
};

}  // namespace

template <class F>
int64_t place_activations(Activations<F>& act, const ModelConfig& c,
                          const std::vector<LayerSpec>& plan, int64_t batch, int64_t seq_len, F* base) {
  const auto [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = make_dims(c, batch, seq_len);
  Carver<F> a{base};

  act.resid.assign(plan.size() + 1, nullptr);
  for (F*& r : act.resid) r = a.take(BS * H);
  act.layers.assign(plan.size(), {});
  int64_t max_proj = 0;
  bool any_attention = false, any_mamba = false, any_fusion = false;
  for (size_t l = 0; l < plan.size(); ++l) {
    LayerActivations<F>& x = act.layers[l];
    const LayerSpec& s = plan[l];
    const int64_t D_in = s.in_proj_rows;
    max_proj = std::max(max_proj, D_in);
    const bool attn = s.has_attention, mamba = s.has_mamba;
    any_attention |= attn;
    any_mamba |= mamba;
    any_fusion |= attn && mamba;
    x.rstd_in = a.take(BS);
    x.h1 = a.take(BS * H);
    x.proj = a.take(BS * D_in);
    x.q = a.take_if(attn, BS * nh * hd);
    x.k = a.take_if(attn && s.kv_role != KvRole::consumer, BS * nkv * hd);
    x.attn = a.take_if(attn, BS * E);
    x.lse = a.take_if(attn, B * nh * S);
    x.conv_pre = a.take_if(mamba, BS * E);
    x.u = a.take_if(mamba, BS * E);
    x.ssm = a.take_if(mamba, BS * (R + 2 * N));
    x.rstd_dt = a.take_if(mamba, BS);
    x.rstd_B = a.take_if(mamba, BS);
    x.rstd_C = a.take_if(mamba, BS);
    x.dt = a.take_if(mamba, BS * R);
    x.Bm = a.take_if(mamba, BS * N);
    x.Cm = a.take_if(mamba, BS * N);
    x.delta = a.take_if(mamba, BS * E);
    x.scan = a.take_if(mamba, BS * E);
    x.rstd_attn = a.take_if(attn, BS);
    x.rstd_scan = a.take_if(mamba, BS);
    x.fused = a.take(BS * E);
    x.x_mid = a.take(BS * H);
    x.rstd_mid = a.take(BS);
    x.h2 = a.take(BS * H);
    x.gate = a.take(BS * I);
    x.up = a.take(BS * I);
    x.act = a.take(BS * I);
  }
  act.rstd_final = a.take(B * T);
  act.hf = a.take(B * T * H);
  act.saved = a.used;

  act.n_scan = a.take_if(any_fusion, BS * E);
  act.logits = a.take(B * T * V);
  act.s.dres = a.take(BS * H);
  act.s.dh = a.take(BS * H);
  act.s.dproj = a.take(BS * max_proj);
  act.s.dq = a.take_if(any_attention, BS * nh * hd);
  act.s.dk = a.take_if(any_attention, BS * nkv * hd);
  act.s.dv = a.take_if(any_attention, BS * nkv * vd);
  act.s.dattn = a.take_if(any_attention, BS * E);
  act.s.dscan = a.take_if(any_mamba, BS * E);
  act.s.dfused = a.take(BS * E);
  act.s.du = a.take_if(any_mamba, BS * E);
  act.s.ddelta = a.take_if(any_mamba, BS * E);
  act.s.ddt = a.take_if(any_mamba, BS * R);
  act.s.dBm = a.take_if(any_mamba, BS * N);
  act.s.dCm = a.take_if(any_mamba, BS * N);
  act.s.dssm = a.take_if(any_mamba, BS * (R + 2 * N));
  act.s.dact = a.take(BS * I);
  act.s.dgate = a.take(BS * I);
  act.s.dup = a.take(BS * I);
  act.s.dhf = a.take(B * T * H);
  act.total = a.used;
  return a.used;
}

template int64_t place_activations<float>(Activations<float>&, const ModelConfig&,
                                          const std::vector<LayerSpec>&, int64_t, int64_t,
                                          float*);
template int64_t place_activations<double>(Activations<double>&, const ModelConfig&,
                                           const std::vector<LayerSpec>&, int64_t, int64_t,
                                           double*);

}  // namespace hymba
