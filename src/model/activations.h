// The activation plan (DESIGN.md §3): every buffer forward keeps for backward, and the backward
// scratch, sized from the config and the batch shape before step 1. One arena holds them all.
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.h"
#include "model/layer_plan.h"

namespace hymba {

// What one decoder layer keeps from forward for its backward. Shapes use BS = B·S rows.
template <class T>
struct LayerActivations {
  T* rstd_in;    // [BS]            input_layernorm statistics
  T* h1;         // [BS, H]         normalised input (in_proj's input)
  T* proj;       // [BS, D_in]      in_proj output: q | k | v | x | z
  T* q;          // [B, S, nh, hd]  rotated queries
  T* k;          // [B, S, nkv, hd] rotated keys (null for a consumer: it reads its producer's)
  T* attn;       // [BS, E]         attention output, heads concatenated
  T* lse;        // [B, nh, S]      attention log-sum-exp
  T* conv_pre;   // [BS, E]         conv output before SiLU
  T* u;          // [BS, E]         SiLU(conv): scan input
  T* ssm;        // [BS, R + 2N]    x_proj output: dt | B | C before their norms
  T* rstd_dt;    // [BS]
  T* rstd_B;     // [BS]
  T* rstd_C;     // [BS]
  T* dt;         // [BS, R]         normalised dt
  T* Bm;         // [BS, N]         normalised B
  T* Cm;         // [BS, N]         normalised C
  T* delta;      // [BS, E]         dt_proj output (bias not yet added)
  T* scan;       // [BS, E]         gated scan output
  T* rstd_attn;  // [BS]            fusion norm statistics
  T* rstd_scan;  // [BS]
  T* fused;      // [BS, E]         (norm(attn) + norm(scan)) / 2: out_proj's input
  T* x_mid;      // [BS, H]         residual stream after the block
  T* rstd_mid;   // [BS]            pre_moe_layernorm statistics
  T* h2;         // [BS, H]         normalised x_mid (MLP input)
  T* gate;       // [BS, I]
  T* up;         // [BS, I]
  T* act;        // [BS, I]         silu(gate) ⊙ up
};

// Backward scratch, reused by every layer.
template <class T>
struct BackwardScratch {
  T* dres;    // [BS, H]            gradient of the residual stream (accumulates)
  T* dh;      // [BS, H]            gradient of a norm output (h1 or h2)
  T* dproj;   // [BS, D_in max]     gradient of in_proj's output
  T* dq;      // [B, S, nh, hd]
  T* dk;      // [B, S, nkv, hd]    a KV group's dK, summed over its layers
  T* dv;      // [B, S, nkv, vd]    a KV group's dV
  T* dattn;   // [BS, E]
  T* dscan;   // [BS, E]
  T* dfused;  // [BS, E]
  T* du;      // [BS, E]
  T* ddelta;  // [BS, E]
  T* ddt;     // [BS, R]
  T* dBm;     // [BS, N]
  T* dCm;     // [BS, N]
  T* dssm;    // [BS, R + 2N]
  T* dact;    // [BS, I]
  T* dgate;   // [BS, I]
  T* dup;     // [BS, I]
  T* dhf;     // [B, T, H]
};

template <class T>
struct Activations {
  std::vector<T*> resid;  // L + 1 residual streams [B, S, H]: resid[l] enters layer l
  std::vector<LayerActivations<T>> layers;
  T* rstd_final;          // [B·T]
  T* hf;                  // [B, T, H]  final-normalised text rows (lm_head input)
  T* n_scan;              // [BS, E]    forward scratch: norm(scan) before the average
  T* logits;              // [B, T, V]  (dlogits after a backward pass)
  BackwardScratch<T> s;
  int64_t saved = 0;      // elements kept from forward for backward
  int64_t total = 0;      // all elements, scratch and logits included
};

// Places every buffer of `a` consecutively from `base`, or only counts them when base is null
// (then the pointers are null). Returns the number of elements needed.
template <class T>
int64_t place_activations(Activations<T>& a, const ModelConfig& c,
                          const std::vector<LayerSpec>& plan, int64_t batch, int64_t seq_len,
                          T* base);

}  // namespace hymba
