#include "optim/adamw.h"

#include <algorithm>
#include <cmath>

#include "cpu/parallel.h"

namespace hymba {

template <class T>
double global_grad_norm(const T* grads, const ParamLayout& layout) {
  double sum_sq = 0;
  for (const ParamTensor& t : layout.tensors) {
    const T* g = grads + t.offset;
    cpu::parallel_for_reduce(t.numel, 1, &sum_sq, t.numel,
                             [&](int64_t i, double* acc) { *acc += double(g[i]) * double(g[i]); });
  }
  return std::sqrt(sum_sq);
}

double clip_factor(double grad_norm, double max_norm) {
  if (max_norm <= 0 || grad_norm <= max_norm) return 1.0;
  return max_norm / (grad_norm + 1e-6);
}

std::vector<bool> decaying_tensors(const ParamLayout& layout, const OptimConfig& config) {
  std::vector<bool> decays;
  for (const ParamTensor& t : layout.tensors) {
    const char* kind = param_kind_name(t.kind);
    const bool exempt = std::find(config.no_decay.begin(), config.no_decay.end(), kind) != config.no_decay.end();
    decays.push_back(!exempt && config.weight_decay > 0);
  }
  return decays;
}

template <class T>
AdamW<T>::AdamW(const ParamLayout& layout, const OptimConfig& config)
    : layout_(layout),
      cfg_(config),
      decays_(decaying_tensors(layout, config)),
      m_(layout.storage, T(0)),
      v_(layout.storage, T(0)) {}

template <class T>
void AdamW<T>::step(T* params, const T* grads, double lr, double grad_factor) {
  ++t_;
  const double b1 = cfg_.beta1, b2 = cfg_.beta2;
  const double bias1 = 1.0 - std::pow(b1, double(t_));
  const double bias2 = 1.0 - std::pow(b2, double(t_));
  for (size_t ti = 0; ti < layout_.tensors.size(); ++ti) {
    const ParamTensor& t = layout_.tensors[ti];
    const double decay = decays_[ti] ? 1.0 - lr * cfg_.weight_decay : 1.0;
    T* p = params + t.offset;
    T* m = m_.data() + t.offset;
    T* v = v_.data() + t.offset;
    const T* g = grads + t.offset;
#pragma omp parallel for schedule(static) if (t.numel >= cpu::kMinParallelWork)
    for (int64_t i = 0; i < t.numel; ++i) {
      const double gi = double(g[i]) * grad_factor;
      m[i] = T(b1 * m[i] + (1 - b1) * gi);
      v[i] = T(b2 * v[i] + (1 - b2) * gi * gi);
      const double update = (m[i] / bias1) / (std::sqrt(v[i] / bias2) + cfg_.eps);
      p[i] = T(p[i] * decay - lr * update);
    }
  }
}

template double global_grad_norm<float>(const float*, const ParamLayout&);
template double global_grad_norm<double>(const double*, const ParamLayout&);
template class AdamW<float>;
template class AdamW<double>;

}  // namespace hymba
