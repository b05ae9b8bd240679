// The activation plan (DESIGN.md §3): every buffer forward keeps for backward, and the backward
// scratch, sized from the config and the batch shape before step 1. One arena holds them all.
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.h"
#include "model/dims.h"
#include "model/layer_plan.h"

namespace hymba {

// What one decoder layer keeps from forward for its backward. Shapes use BS = B·S rows. The
// buffers of a branch the layer does not run (LayerSpec::has_attention / has_mamba) are null.
// F: the activation type; S: the statistics' type (rstd, lse), float where F is bf16.
template <class F, class S = F>
struct LayerActivations {
  S* rstd_in;    // [BS]            input_layernorm statistics
  F* h1;         // [BS, H]         normalised input (in_proj's input)
  F* proj;       // [BS, D_in]      in_proj output: q | k | v | x | z
  F* q;          // [B, S, nh, hd]  rotated queries
  F* k;          // [B, S, nkv, hd] rotated keys (null for a consumer: it reads its producer's)
  F* attn;       // [BS, E]         attention output, heads concatenated
  S* lse;        // [B, nh, S]      attention log-sum-exp
  F* u;          // [BS, E]         SiLU(conv): scan input
  F* ssm;        // [BS, X]         x_proj output: dt | B | C before their norms, each piece
                 //                 padded (XProjColumns; the padding columns are x_proj's zero
                 //                 rows' output: zero)
  S* rstd_dt;    // [BS]
  S* rstd_B;     // [BS]
  S* rstd_C;     // [BS]
  F* dt;         // [BS, Rp]        normalised dt; columns R..Rp stay zero (the arena starts
                 //                 zeroed and nothing writes them), as dt_proj's padded GEMMs
                 //                 need: they keep dt_proj's padding columns' gradient zero
  F* Bm;         // [BS, N]         normalised B
  F* Cm;         // [BS, N]         normalised C
  F* delta;      // [BS, E]         dt_proj output (bias not yet added)
  F* scan;       // [BS, E]         gated scan output
  S* scan_states;  // [scan_states]  states the scan's forward saves for its backward (GPU; none
                   //                on the CPU, whose backward recomputes them)
  S* rstd_attn;  // [BS]            fusion norm statistics
  S* rstd_scan;  // [BS]
  F* fused;      // [BS, E]         (norm(attn) + norm(scan)) / 2, or the one branch's norm:
                 //                 out_proj's input
  F* x_mid;      // [BS, H]         residual stream after the block
  S* rstd_mid;   // [BS]            pre_moe_layernorm statistics
  F* h2;         // [BS, H]         normalised x_mid (MLP input)
  F* gate;       // [BS, I]
  F* up;         // [BS, I]
  F* act;        // [BS, I]         silu(gate) ⊙ up
};

// Backward scratch, reused by every layer; null for a branch no layer runs.
template <class F>
struct BackwardScratch {
  F* dres;    // [BS, H]            gradient of the residual stream (accumulates)
  F* dh;      // [BS, H]            gradient of a norm output (h1 or h2)
  F* dproj;   // [BS, D_in max]     gradient of in_proj's output
  F* dq;      // [B, S, nh, hd]
  F* dk;      // [B, S, nkv, hd]    a KV group's dK, summed over its layers
  F* dv;      // [B, S, nkv, vd]    a KV group's dV
  F* dattn;   // [BS, E]
  F* dscan;   // [BS, E]
  F* dfused;  // [BS, E]
  F* du;      // [BS, E]
  F* ddelta;  // [BS, E]
  F* ddt;     // [BS, Rp]           (the padding columns: dt_proj's zero columns' output)
  F* dBm;     // [BS, N]
  F* dCm;     // [BS, N]
  F* dssm;    // [BS, X]            padding columns zero as in dt (they keep x_proj's zero
              //                    rows' gradient zero)
  F* dact;    // [BS, I]
  F* dgate;   // [BS, I]
  F* dup;     // [BS, I]
  F* dhf;     // [B, T, H]
};

template <class F, class S = F>
struct Activations {
  std::vector<F*> resid;  // L + 1 residual streams [B, S, H]: resid[l] enters layer l
  std::vector<LayerActivations<F, S>> layers;
  S* rstd_final;          // [B·T]
  F* hf;                  // [B, T, H]  final-normalised text rows (lm_head input)
  F* logits;              // [B, T, V]  (dlogits after a backward pass)
  // Tensor parallelism only (null with one rank):
  S* row_sums;            // [BS]               a split norm's per-row sums (all-reduced)
  S* ce_stats;            // [tp, B·T, 3]       every rank's cross-entropy statistics (gathered)
  BackwardScratch<F> s;
  int64_t saved = 0;      // bytes kept from forward for backward (alignment padding excluded)
  int64_t total = 0;      // all bytes, scratch and logits included
};

// Places every buffer of `a` one after the other from `base` (each on a 256-byte boundary), or
// only counts them when base is null (then the pointers are null). Returns the bytes needed.
// d: the sizes of one tensor-parallel rank of tp (make_dims); scan_states: the S values each
// Mamba layer's scan saves (the backend's scan_state_count). recompute: the buffers this level
// recomputes in backward are one set that every layer's pointers share (as scratch, not saved).
template <class F, class S>
int64_t place_activations(Activations<F, S>& a, const Dims& d, const std::vector<LayerSpec>& plan, int64_t tp,
                          int64_t scan_states, Recompute recompute, void* base);

}  // namespace hymba
