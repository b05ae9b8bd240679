// AdamW (decoupled weight decay, PyTorch's update rule) over the flat parameter buffer, with
// its moments in the parameter type (fp32 in training, double in tests). Which tensors decay is
// decided per tensor kind (optim.no_decay). Under data parallelism each rank updates its ZeRO-1
// shard (parallel/param_shard.h) and keeps the moments of that shard only, compact; a single
// process's shard is the whole buffer.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

#include "config/config.h"
#include "model/param_layout.h"
#include "parallel/param_shard.h"

namespace hymba {

// Σ x² over x [n], accumulated in double in a reproducible order (fixed per-thread partials).
template <class T>
double sum_of_squares(const T* x, int64_t n);

// sqrt(Σ g²) over every parameter tensor (the padding between them is not read).
template <class T>
double global_grad_norm(const T* grads, const ParamLayout& layout);

// Factor that brings the gradient norm down to max_norm (1 when already below, or max_norm = 0).
double clip_factor(double grad_norm, double max_norm);

// Per tensor of `layout`: whether weight decay applies (optim.weight_decay > 0 and the tensor's
// kind not listed in optim.no_decay).
std::vector<bool> decaying_tensors(const ParamLayout& layout, const OptimConfig& config);

// One update's constants, computed in double from the config and the step count.
struct AdamWConstants {
  double bias1 = 1, bias2 = 1;  // 1 − beta^t, t = the step being taken (1 for the first)
  double decay_factor = 1;      // 1 − lr·weight_decay, for decayed tensors
};
AdamWConstants adamw_constants(const OptimConfig& config, int64_t step, double lr);

template <class T>
class AdamW {
 public:
  AdamW(const ParamLayout& layout, const OptimConfig& config, const ParamShard& shard);
  AdamW(const ParamLayout& layout, const OptimConfig& config)  // the whole buffer
      : AdamW(layout, config, shard_params(layout, 0, 1)) {}

  // One update of the shard with learning rate lr, using grads · grad_factor (the clipping
  // factor). params [layout.storage] (only the shard's elements change); shard_grads
  // [shard.length], compact (for the whole buffer: the gradient buffer itself).
  void step(T* params, const T* shard_grads, double lr, double grad_factor);

  int64_t steps_taken() const { return t_; }
  // Resuming from a checkpoint: the step count sets the bias correction of the next update.
  void set_steps_taken(int64_t t) { t_ = t; }
  std::vector<T>& first_moment() { return m_; }   // [shard.length], compact
  std::vector<T>& second_moment() { return v_; }

 private:
  OptimConfig cfg_;
  std::vector<bool> decays_;             // per tensor of the layout
  std::vector<ShardSegment> segments_;   // the tensors' pieces in the shard
  std::vector<T> m_, v_;                 // [shard.length]
  int64_t t_ = 0;
};

}  // namespace hymba
