// The Hymba model on the CPU reference backend (HYMBA_SPEC §2): a fixed list of layers, each
// with a hand-written forward and backward (tape-free, DESIGN.md §3).
//
// Memory is planned up front: the constructor sizes every buffer from the config and the batch
// shape (B rows of T text tokens) and allocates once; forward and backward allocate nothing
// beyond small per-call scratch inside kernels.
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.h"
#include "model/activations.h"
#include "model/dims.h"
#include "model/layer_plan.h"
#include "model/param_layout.h"

namespace hymba {

// F: float (training) or double (gradient checks).
template <class F>
class HymbaModel {
 public:
  // Plans and allocates parameters, gradients and activations for batches of `batch` rows of
  // `seq_len` text tokens. The config must be validated.
  HymbaModel(const ModelConfig& config, int64_t batch, int64_t seq_len);
  HymbaModel(const HymbaModel&) = delete;  // the views below point into this object's buffers
  HymbaModel& operator=(const HymbaModel&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const std::vector<LayerSpec>& layer_plan() const { return plan_; }
  const ParamLayout& layout() const { return layout_; }
  int64_t batch() const { return d_.B; }
  int64_t seq_len() const { return d_.T; }

  std::vector<F> params;  // [layout().storage]
  std::vector<F> grads;   // [layout().storage]; backward accumulates (+=)

  void init(uint64_t seed);
  void zero_grads();

  // ids [B, T]. With targets [B, T] (kIgnoreIndex rows skipped) returns the summed
  // cross-entropy over counted targets; without, returns 0. logits() then holds [B, T, V].
  double forward(const int32_t* ids, const int32_t* targets);

  // forward, then backward of (grad_scale · summed loss) into grads (+=). The logits buffer is
  // turned into dlogits in the same pass as the loss (fused softmax/cross-entropy).
  double forward_backward(const int32_t* ids, const int32_t* targets, double grad_scale);

  const F* logits() const { return a_.logits; }  // [B, T, V]
  const Activations<F>& activations() const { return a_; }

 private:
  double run_forward(const int32_t* ids, const int32_t* targets, double grad_scale,
                     bool want_grad);
  // A layer runs the branches its LayerSpec names (model.mixer); each branch reads and writes
  // its own columns of the in_proj output and of its gradient.
  void layer_forward(int64_t l);
  void attention_heads_forward(int64_t l);
  void mamba_heads_forward(int64_t l);
  void layer_backward(int64_t l);
  void attention_heads_backward(int64_t l);
  void mamba_heads_backward(int64_t l);
  double head_forward(const int32_t* targets, double grad_scale, bool want_grad);
  void head_backward();

  ModelConfig cfg_;
  std::vector<LayerSpec> plan_;
  ParamLayout layout_;
  Dims d_;                       // sizes for this batch shape
  std::vector<float> inv_freq_;  // [hd/2] RoPE frequencies
  ModelParams<F*> w_, g_;        // views into params / grads

  std::vector<F> arena_;         // every activation buffer, placed by place_activations
  Activations<F> a_;
  std::vector<int32_t> ids_;     // [B, T] the batch being processed (backward needs it)
};

}  // namespace hymba
