#ifdef HYMBA_HAVE_CUDA

#include "optim/cuda_adamw.h"

#include <cmath>

#include "cuda/adamw.h"
#include "optim/adamw.h"

namespace hymba {

CudaAdamW::CudaAdamW(const ParamLayout& layout, const OptimConfig& config)
    : layout_(layout),
      cfg_(config),
      decays_(decaying_tensors(layout, config)),
      m_(cuda::DeviceArray<float>::zeros(layout.storage)),
      v_(cuda::DeviceArray<float>::zeros(layout.storage)) {}

void CudaAdamW::step(float* params, const float* grads, double lr, double grad_factor) {
  ++t_;
  cuda::AdamWStep s;
  s.lr = lr;
  s.beta1 = cfg_.beta1;
  s.beta2 = cfg_.beta2;
  s.eps = cfg_.eps;
  s.bias1 = 1.0 - std::pow(cfg_.beta1, double(t_));
  s.bias2 = 1.0 - std::pow(cfg_.beta2, double(t_));
  s.grad_factor = grad_factor;
  // One launch per tensor: the decay differs by tensor kind.
  for (size_t ti = 0; ti < layout_.tensors.size(); ++ti) {
    const ParamTensor& t = layout_.tensors[ti];
    s.decay = decays_[ti] ? 1.0 - lr * cfg_.weight_decay : 1.0;
    cuda::adamw_update(params + t.offset, grads + t.offset, m_.data() + t.offset, v_.data() + t.offset, t.numel,
                       s, nullptr);
  }
}

}  // namespace hymba

#endif
