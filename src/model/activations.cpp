#include "model/activations.h"

#include "cpu/cross_entropy.h"
#include "model/dims.h"

#include <algorithm>
#include <cstddef>

#ifdef HYMBA_HAVE_CUDA
#include <cuda_bf16.h>
#endif

namespace hymba {

namespace {

// Hands out consecutive pieces of one buffer. With a null base it only counts, so the same code
// both sizes the arena and places the pointers. Pieces start on 256-byte boundaries (what
// cudaMalloc guarantees, and what vectorised kernels rely on).
struct Carver {
  static constexpr int64_t kAlign = 256;
  std::byte* base;
  int64_t used = 0;     // bytes of the arena, alignment padding included
  int64_t payload = 0;  // bytes of the buffers themselves
  template <class T>
  T* take(int64_t n) {
    T* p = base ? reinterpret_cast<T*>(base + used) : nullptr;
    payload += n * int64_t(sizeof(T));
    used += (n * int64_t(sizeof(T)) + kAlign - 1) / kAlign * kAlign;
    return p;
  }
  // Buffers of a branch that is off (model.mixer) take no space and stay null.
  template <class T>
  T* take_if(bool present, int64_t n) { return present ? take<T>(n) : nullptr; }
};

}  // namespace

// One layer's buffers (or, with `shared` null, the set that recomputed buffers share: one of
// each, sized for the largest layer). A buffer a level recomputes (DESIGN.md §3) points into
// the shared set; the others are the layer's own.
struct LayerShape {
  bool attention, mamba, has_kv;  // has_kv: k rows (not a consumer)
  bool keeps_kv;                  // a KV producer: consumers read its proj and k, so those stay
  int64_t D_in;
};

template <class F, class St>
void place_layer(Carver& a, LayerActivations<F, St>& x, const LayerShape& shape, const Dims& d, Recompute level,
                 int64_t scan_states, const LayerActivations<F, St>* shared) {
  const auto [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d;
  const XProjColumns xc = x_proj_columns(R, N);
  using L = LayerActivations<F, St>;
  // recomputed: at this level the backward recomputes the buffer (so all layers share one).
  const auto buf = [&]<class T>(T* L::*field, bool present, bool recomputed, int64_t n) {
    if (!present) x.*field = nullptr;
    else if (!shared) x.*field = recomputed ? a.take<T>(n) : nullptr;
    else x.*field = recomputed ? shared->*field : a.take<T>(n);
  };
  const bool norms = level >= Recompute::norms, mlp = level >= Recompute::mlp, all = level == Recompute::all;
  const bool attn = shape.attention, mamba = shape.mamba;
  buf(&L::rstd_in, true, all, BS);
  buf(&L::h1, true, norms, BS * H);
  buf(&L::proj, true, all && !shape.keeps_kv, BS * shape.D_in);
  buf(&L::q, attn, all, BS * nh * hd);
  buf(&L::k, attn && shape.has_kv, all && !shape.keeps_kv, BS * nkv * hd);
  buf(&L::attn, attn, all, BS * E);
  buf(&L::lse, attn, all, B * nh * S);
  buf(&L::u, mamba, all, BS * E);
  buf(&L::ssm, mamba, all, BS * xc.width);
  buf(&L::rstd_dt, mamba, all, BS);
  buf(&L::rstd_B, mamba, all, BS);
  buf(&L::rstd_C, mamba, all, BS);
  buf(&L::dt, mamba, all, BS * xc.dt_width);
  buf(&L::Bm, mamba, all, BS * N);
  buf(&L::Cm, mamba, all, BS * N);
  buf(&L::delta, mamba, all, BS * E);
  buf(&L::scan, mamba, all, BS * E);
  buf(&L::scan_states, mamba && scan_states > 0, all, scan_states);
  buf(&L::rstd_attn, attn, all, BS);
  buf(&L::rstd_scan, mamba, all, BS);
  buf(&L::fused, true, norms, BS * E);
  buf(&L::x_mid, true, all, BS * H);
  buf(&L::rstd_mid, true, all, BS);
  buf(&L::h2, true, norms, BS * H);
  buf(&L::gate, true, mlp, BS * I);
  buf(&L::up, true, mlp, BS * I);
  buf(&L::act, true, mlp, BS * I);
}

template <class F, class St>
int64_t place_activations(Activations<F, St>& act, const Dims& d, const std::vector<LayerSpec>& plan, int64_t tp,
                          int64_t scan_states, Recompute recompute, void* base) {
  const auto [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d;
  const XProjColumns xc = x_proj_columns(R, N);
  Carver a{static_cast<std::byte*>(base)};

  std::vector<LayerShape> shapes;
  LayerShape widest{false, false, false, false, 0};  // the shared set's: every branch, the largest D_in
  for (const LayerSpec& s : plan) {
    const bool has_kv = s.has_attention && s.kv_role != KvRole::consumer;
    shapes.push_back({s.has_attention, s.has_mamba, has_kv, s.kv_role == KvRole::producer, s.in_proj_rows / tp});
    widest = {widest.attention || s.has_attention, widest.mamba || s.has_mamba, widest.has_kv || has_kv, false,
              std::max(widest.D_in, s.in_proj_rows / tp)};
  }
  const bool any_attention = widest.attention, any_mamba = widest.mamba;

  // What forward keeps for backward: the residual streams, each layer's own buffers.
  LayerActivations<F, St> shared{};
  place_layer<F, St>(a, shared, widest, d, recompute, scan_states, nullptr);
  const int64_t shared_bytes = a.payload;  // scratch: one layer's recomputed buffers
  act.resid.assign(plan.size() + 1, nullptr);
  for (F*& r : act.resid) r = a.take<F>(BS * H);
  act.layers.assign(plan.size(), {});
  for (size_t l = 0; l < plan.size(); ++l) {
    place_layer(a, act.layers[l], shapes[l], d, recompute, scan_states, &shared);
  }
  act.rstd_final = a.take<St>(B * T);
  act.hf = a.take<F>(B * T * H);
  act.saved = a.payload - shared_bytes;

  act.logits = a.take<F>(B * T * V);
  act.row_sums = a.take_if<St>(tp > 1, BS);
  act.ce_stats = a.take<St>(tp * B * T * cpu::kCrossEntropyStats);  // tiny: also the padded-vocabulary loss
  act.s.dres = a.take<F>(BS * H);
  act.s.dh = a.take<F>(BS * H);
  act.s.dproj = a.take<F>(BS * widest.D_in);
  act.s.dq = a.take_if<F>(any_attention, BS * nh * hd);
  act.s.dk = a.take_if<F>(any_attention, BS * nkv * hd);
  act.s.dv = a.take_if<F>(any_attention, BS * nkv * vd);
  act.s.dattn = a.take_if<F>(any_attention, BS * E);
  act.s.dscan = a.take_if<F>(any_mamba, BS * E);
  act.s.dfused = a.take<F>(BS * E);
  act.s.du = a.take_if<F>(any_mamba, BS * E);
  act.s.ddelta = a.take_if<F>(any_mamba, BS * E);
  act.s.ddt = a.take_if<F>(any_mamba, BS * xc.dt_width);
  act.s.dBm = a.take_if<F>(any_mamba, BS * N);
  act.s.dCm = a.take_if<F>(any_mamba, BS * N);
  act.s.dssm = a.take_if<F>(any_mamba, BS * xc.width);
  act.s.dact = a.take<F>(BS * I);
  act.s.dgate = a.take<F>(BS * I);
  act.s.dup = a.take<F>(BS * I);
  act.s.dhf = a.take<F>(B * T * H);
  act.total = a.payload;
  return a.used;
}

template int64_t place_activations(Activations<float>&, const Dims&, const std::vector<LayerSpec>&, int64_t,
                                   int64_t, Recompute, void*);
template int64_t place_activations(Activations<double>&, const Dims&, const std::vector<LayerSpec>&, int64_t,
                                   int64_t, Recompute, void*);
#ifdef HYMBA_HAVE_CUDA
template int64_t place_activations(Activations<__nv_bfloat16, float>&, const Dims&, const std::vector<LayerSpec>&,
                                   int64_t, int64_t, Recompute, void*);
#endif

}  // namespace hymba
