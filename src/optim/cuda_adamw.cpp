#ifdef HYMBA_HAVE_CUDA

#include "optim/cuda_adamw.h"

#include "cuda/adamw.h"
#include "optim/adamw.h"

namespace hymba {

CudaAdamW::CudaAdamW(const ParamLayout& layout, const OptimConfig& config, const ParamShard& shard)
    : cfg_(config),
      decays_(decaying_tensors(layout, config)),
      segments_(shard_segments(layout, shard)),
      m_(cuda::DeviceArray<float>::zeros(shard.length)),
      v_(cuda::DeviceArray<float>::zeros(shard.length)) {}

void CudaAdamW::step(float* params, const float* shard_grads, double lr, double grad_factor) {
  ++t_;
  const AdamWConstants k = adamw_constants(cfg_, t_, lr);
  cuda::AdamWStep s;
  s.lr = lr;
  s.beta1 = cfg_.beta1;
  s.beta2 = cfg_.beta2;
  s.eps = cfg_.eps;
  s.bias1 = k.bias1;
  s.bias2 = k.bias2;
  s.grad_factor = grad_factor;
  // One launch per tensor piece: the decay differs by tensor kind.
  for (const ShardSegment& seg : segments_) {
    s.decay = decays_[seg.tensor] ? k.decay_factor : 1.0;
    cuda::adamw_update(params + seg.flat, shard_grads + seg.compact, m_.data() + seg.compact,
                       v_.data() + seg.compact, seg.length, s, nullptr);
  }
}

}  // namespace hymba

#endif
