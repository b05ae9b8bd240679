#include "optim/adamw.h"

#include <algorithm>
#include <cmath>

#include "cpu/parallel.h"

namespace hymba {

template <class T>
double sum_of_squares(const T* x, int64_t n) {
  double sum_sq = 0;
  cpu::parallel_for_reduce(n, 1, &sum_sq, n, [&](int64_t i, double* acc) { *acc += double(x[i]) * double(x[i]); });
  return sum_sq;
}

template <class T>
double global_grad_norm(const T* grads, const ParamLayout& layout) {
  double sum_sq = 0;
  for (const ParamTensor& t : layout.tensors) sum_sq += sum_of_squares(grads + t.offset, t.numel);
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

AdamWConstants adamw_constants(const OptimConfig& config, int64_t step, double lr) {
  return {1.0 - std::pow(config.beta1, double(step)), 1.0 - std::pow(config.beta2, double(step)),
          1.0 - lr * config.weight_decay};
}

template <class T>
AdamW<T>::AdamW(const ParamLayout& layout, const OptimConfig& config, const ParamShard& shard)
    : cfg_(config),
      decays_(decaying_tensors(layout, config)),
      segments_(shard_segments(layout, shard)),
      m_(shard.length, T(0)),
      v_(shard.length, T(0)) {}

template <class T>
void AdamW<T>::step(T* params, const T* shard_grads, double lr, double grad_factor) {
  ++t_;
  const double b1 = cfg_.beta1, b2 = cfg_.beta2;
  const AdamWConstants k = adamw_constants(cfg_, t_, lr);
  const double bias1 = k.bias1, bias2 = k.bias2;
  for (const ShardSegment& s : segments_) {
    const double decay = decays_[s.tensor] ? k.decay_factor : 1.0;
    T* p = params + s.flat;
    T* m = m_.data() + s.compact;
    T* v = v_.data() + s.compact;
    const T* g = shard_grads + s.compact;
#pragma omp parallel for schedule(static) if (s.length >= cpu::kMinParallelWork)
    for (int64_t i = 0; i < s.length; ++i) {
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
template double sum_of_squares<float>(const float*, int64_t);
template double sum_of_squares<double>(const double*, int64_t);
template class AdamW<float>;
template class AdamW<double>;

}  // namespace hymba
