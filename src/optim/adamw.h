// AdamW (decoupled weight decay, PyTorch's update rule) over the flat parameter buffer, with
// its moments in the parameter type (fp32 in training, double in tests). Which tensors decay is
// decided per tensor kind (optim.no_decay).
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.h"
#include "model/param_layout.h"

namespace hymba {

// sqrt(Σ g²) over every parameter tensor, accumulated in double in a reproducible order.
template <class T>
double global_grad_norm(const T* grads, const ParamLayout& layout);

// Factor that brings the gradient norm down to max_norm (1 when already below, or max_norm = 0).
double clip_factor(double grad_norm, double max_norm);

// Per tensor of `layout`: whether weight decay applies (optim.weight_decay > 0 and the tensor's
// kind not listed in optim.no_decay).
std::vector<bool> decaying_tensors(const ParamLayout& layout, const OptimConfig& config);

template <class T>
class AdamW {
 public:
  AdamW(const ParamLayout& layout, const OptimConfig& config);

  // One update with learning rate lr, using grads · grad_factor (the clipping factor).
  void step(T* params, const T* grads, double lr, double grad_factor);

  int64_t steps_taken() const { return t_; }
  // Resuming from a checkpoint: the step count sets the bias correction of the next update.
  void set_steps_taken(int64_t t) { t_ = t; }
  std::vector<T>& first_moment() { return m_; }
  std::vector<T>& second_moment() { return v_; }

 private:
  const ParamLayout& layout_;
  OptimConfig cfg_;
  std::vector<bool> decays_;  // per tensor of layout_
  std::vector<T> m_, v_;      // [layout.storage]
  int64_t t_ = 0;
};

}  // namespace hymba
