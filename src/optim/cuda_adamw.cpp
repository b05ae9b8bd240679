#ifdef HYMBA_HAVE_CUDA

#include "optim/cuda_adamw.h"

#include "cuda/adamw.h"
#include "optim/adamw.h"

namespace hymba {

std::vector<CudaAdamW::Run> CudaAdamW::update_runs(const ParamLayout& layout, const OptimConfig& config,
                                                  const ParamShard& shard) {
  const std::vector<bool> decays = decaying_tensors(layout, config);
  const auto bucket_of = [&](int64_t flat) {
    size_t b = 0;
    while (flat >= layout.buckets[b].end) ++b;
    return b;
  };
  std::vector<Run> runs;
  size_t last_bucket = 0;
  for (const ShardSegment& seg : shard_segments(layout, shard)) {  // in compact order
    const size_t bucket = bucket_of(seg.flat);
    const bool decay = decays[seg.tensor];
    // The same bucket (so the same part: flat and compact offsets move together) and decay.
    if (!runs.empty() && bucket == last_bucket && runs.back().decays == decay) {
      runs.back().length = seg.compact + seg.length - runs.back().compact;
    } else {
      runs.push_back({seg.flat, seg.compact, seg.length, decay, bucket != layout.fp32_bucket});
    }
    last_bucket = bucket;
  }
  return runs;
}

CudaAdamW::CudaAdamW(const ParamLayout& layout, const OptimConfig& config, const ParamShard& shard)
    : cfg_(config),
      runs_(update_runs(layout, config, shard)),
      m_(cuda::DeviceArray<float>::zeros(shard.length)),
      v_(cuda::DeviceArray<float>::zeros(shard.length)) {}

void CudaAdamW::step(float* params, const float* shard_grads, double lr, double grad_factor,
                     __nv_bfloat16* params_bf16) {
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
  for (const Run& r : runs_) {
    s.decay = r.decays ? k.decay_factor : 1.0;
    cuda::adamw_update(params + r.flat, shard_grads + r.compact, m_.data() + r.compact, v_.data() + r.compact,
                       r.length, s, nullptr, params_bf16 && r.matrices ? params_bf16 + r.flat : nullptr);
  }
}

}  // namespace hymba

#endif
