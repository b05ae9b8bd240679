// AdamW on the GPU: the same update as AdamW<float> (adamw.h) over the flat fp32 parameter
// buffer in device memory, with its moments (of the rank's shard, compact) in device memory too.
// Built only with CUDA.
#pragma once

#ifdef HYMBA_HAVE_CUDA

#include <cuda_bf16.h>

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
  // [shard.length]. params_bf16 [layout.matrices_end()], if given, is the model's bf16 copy of
  // the matrices: the updated matrices of the shard are written there too, in the same pass.
  void step(float* params, const float* shard_grads, double lr, double grad_factor,
            __nv_bfloat16* params_bf16 = nullptr);

  int64_t steps_taken() const { return t_; }
  void set_steps_taken(int64_t t) { t_ = t; }
  cuda::DeviceArray<float>& first_moment() { return m_; }  // [shard.length], compact
  cuda::DeviceArray<float>& second_moment() { return v_; }

 private:
  // What one launch updates: adjacent pieces of tensors in one bucket with the same decay (the
  // zero padding between them stays zero), so a layer's matrices are one launch, not seven.
  struct Run {
    int64_t flat, compact, length;
    bool decays, matrices;  // matrices: in a matrix bucket, which has a bf16 copy
  };
  static std::vector<Run> update_runs(const ParamLayout& layout, const OptimConfig& config, const ParamShard& shard);

  OptimConfig cfg_;
  std::vector<Run> runs_;
  cuda::DeviceArray<float> m_, v_;      // [shard.length]
  int64_t t_ = 0;
};

}  // namespace hymba

#endif
