// AdamW on the GPU: the same update as AdamW<float> (adamw.h) over the flat fp32 parameter
// buffer in device memory, with its moments in device memory too. Built only with CUDA.
#pragma once

#ifdef HYMBA_HAVE_CUDA

#include <cstdint>
#include <vector>

#include "config/config.h"
#include "cuda/device_array.h"
#include "model/param_layout.h"

namespace hymba {

class CudaAdamW {
 public:
  CudaAdamW(const ParamLayout& layout, const OptimConfig& config);

  // One update with learning rate lr, using grads · grad_factor (the clipping factor); params and
  // grads are device pointers with the layout given at construction.
  void step(float* params, const float* grads, double lr, double grad_factor);

  int64_t steps_taken() const { return t_; }
  void set_steps_taken(int64_t t) { t_ = t; }
  cuda::DeviceArray<float>& first_moment() { return m_; }
  cuda::DeviceArray<float>& second_moment() { return v_; }

 private:
  const ParamLayout& layout_;
  OptimConfig cfg_;
  std::vector<bool> decays_;      // per tensor of layout_
  cuda::DeviceArray<float> m_, v_;  // [layout.storage]
  int64_t t_ = 0;
};

}  // namespace hymba

#endif
