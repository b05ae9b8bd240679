// AdamW on the GPU: the same update as AdamW<float> (adamw.h) over the flat fp32 parameter
// buffer in device memory, with its moments (of the rank's shard, compact) in device memory too.
// Built only with CUDA.
#pragma once

#ifdef HYMBA_HAVE_CUDA

#include <cstdint>
#include <vector>

#include "config/config.h"
#include "cuda/device_array.h"
#include "model/param_layout.h"
#include "parallel/param_shard.h"

namespace hymba {

class CudaAdamW {
 public:
  CudaAdamW(const ParamLayout& layout, const OptimConfig& config, const ParamShard& shard);
  CudaAdamW(const ParamLayout& layout, const OptimConfig& config)  // the whole buffer
      : CudaAdamW(layout, config, shard_params(layout, 0, 1)) {}

  // As AdamW<float>::step, with device pointers: params [layout.storage], shard_grads
  // [shard.length].
  void step(float* params, const float* shard_grads, double lr, double grad_factor);

  int64_t steps_taken() const { return t_; }
  void set_steps_taken(int64_t t) { t_ = t; }
  cuda::DeviceArray<float>& first_moment() { return m_; }  // [shard.length], compact
  cuda::DeviceArray<float>& second_moment() { return v_; }

 private:
  OptimConfig cfg_;
  std::vector<bool> decays_;            // per tensor of the layout
  std::vector<ShardSegment> segments_;  // the tensors' pieces in the shard
  cuda::DeviceArray<float> m_, v_;      // [shard.length]
  int64_t t_ = 0;
};

}  // namespace hymba

#endif
