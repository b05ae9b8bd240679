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

template <class F, class St>
int64_t place_activations(Activations<F, St>& act, const Dims& d, const std::vector<LayerSpec>& plan, int64_t tp,
                          int64_t scan_states, void* base) {
  const auto [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d;
  Carver a{static_cast<std::byte*>(base)};

  act.resid.assign(plan.size() + 1, nullptr);
  for (F*& r : act.resid) r = a.take<F>(BS * H);
  act.layers.assign(plan.size(), {});
  int64_t max_proj = 0;
  bool any_attention = false, any_mamba = false, any_fusion = false;
  for (size_t l = 0; l < plan.size(); ++l) {
    LayerActivations<F, St>& x = act.layers[l];
    const LayerSpec& s = plan[l];
    const int64_t D_in = s.in_proj_rows / tp;  // this rank's rows
    max_proj = std::max(max_proj, D_in);
    const bool attn = s.has_attention, mamba = s.has_mamba;
    any_attention |= attn;
    any_mamba |= mamba;
    any_fusion |= attn && mamba;
    x.rstd_in = a.take<St>(BS);
    x.h1 = a.take<F>(BS * H);
    x.proj = a.take<F>(BS * D_in);
    x.q = a.take_if<F>(attn, BS * nh * hd);
    x.k = a.take_if<F>(attn && s.kv_role != KvRole::consumer, BS * nkv * hd);
    x.attn = a.take_if<F>(attn, BS * E);
    x.lse = a.take_if<St>(attn, B * nh * S);
    x.conv_pre = a.take_if<F>(mamba, BS * E);
    x.u = a.take_if<F>(mamba, BS * E);
    x.ssm = a.take_if<F>(mamba, BS * (R + 2 * N));
    x.rstd_dt = a.take_if<St>(mamba, BS);
    x.rstd_B = a.take_if<St>(mamba, BS);
    x.rstd_C = a.take_if<St>(mamba, BS);
    x.dt = a.take_if<F>(mamba, BS * R);
    x.Bm = a.take_if<F>(mamba, BS * N);
    x.Cm = a.take_if<F>(mamba, BS * N);
    x.delta = a.take_if<F>(mamba, BS * E);
    x.scan = a.take_if<F>(mamba, BS * E);
    x.scan_states = a.take_if<St>(mamba && scan_states > 0, scan_states);
    x.rstd_attn = a.take_if<St>(attn, BS);
    x.rstd_scan = a.take_if<St>(mamba, BS);
    x.fused = a.take<F>(BS * E);
    x.x_mid = a.take<F>(BS * H);
    x.rstd_mid = a.take<St>(BS);
    x.h2 = a.take<F>(BS * H);
    x.gate = a.take<F>(BS * I);
    x.up = a.take<F>(BS * I);
    x.act = a.take<F>(BS * I);
  }
  act.rstd_final = a.take<St>(B * T);
  act.hf = a.take<F>(B * T * H);
  act.saved = a.payload;

  act.n_scan = a.take_if<F>(any_fusion, BS * E);
  act.logits = a.take<F>(B * T * V);
  act.row_sums = a.take_if<St>(tp > 1, BS);
  act.ce_stats = a.take<St>(tp * B * T * cpu::kCrossEntropyStats);  // tiny: also the padded-vocabulary loss
  act.s.dres = a.take<F>(BS * H);
  act.s.dh = a.take<F>(BS * H);
  act.s.dproj = a.take<F>(BS * max_proj);
  act.s.dq = a.take_if<F>(any_attention, BS * nh * hd);
  act.s.dk = a.take_if<F>(any_attention, BS * nkv * hd);
  act.s.dv = a.take_if<F>(any_attention, BS * nkv * vd);
  act.s.dattn = a.take_if<F>(any_attention, BS * E);
  act.s.dscan = a.take_if<F>(any_mamba, BS * E);
  act.s.dfused = a.take<F>(BS * E);
  act.s.du = a.take_if<F>(any_mamba, BS * E);
  act.s.ddelta = a.take_if<F>(any_mamba, BS * E);
  act.s.ddt = a.take_if<F>(any_mamba, BS * R);
  act.s.dBm = a.take_if<F>(any_mamba, BS * N);
  act.s.dCm = a.take_if<F>(any_mamba, BS * N);
  act.s.dssm = a.take_if<F>(any_mamba, BS * (R + 2 * N));
  act.s.dact = a.take<F>(BS * I);
  act.s.dgate = a.take<F>(BS * I);
  act.s.dup = a.take<F>(BS * I);
  act.s.dhf = a.take<F>(B * T * H);
  act.total = a.payload;
  return a.used;
}

template int64_t place_activations(Activations<float>&, const Dims&, const std::vector<LayerSpec>&, int64_t,
                                   int64_t, void*);
template int64_t place_activations(Activations<double>&, const Dims&, const std::vector<LayerSpec>&, int64_t,
                                   int64_t, void*);
#ifdef HYMBA_HAVE_CUDA
template int64_t place_activations(Activations<__nv_bfloat16, float>&, const Dims&, const std::vector<LayerSpec>&,
                                   int64_t, int64_t, void*);
#endif

}  // namespace hymba
