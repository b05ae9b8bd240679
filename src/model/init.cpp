#include "model/init.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "cpu/parallel.h"

namespace hymba {

namespace {

// Mamba's recipe: dt log-uniform in [dt_min, dt_max], floored at 1e-4, and the bias is its
// inverse softplus, so softplus(bias) = dt at the start of training.
double mamba_dt_bias(double u01, double dt_min, double dt_max) {
  double dt = std::exp(u01 * (std::log(dt_max) - std::log(dt_min)) + std::log(dt_min));
  dt = std::max(dt, 1e-4);
  return dt + std::log(-std::expm1(-dt));
}

double initial_value(const ParamTensor& t, const ModelConfig& c, uint64_t seed, uint64_t stream,
                     int64_t i) {
  switch (t.init) {
    case InitRule::normal:
      return c.initializer_range * normal01(seed, stream, i);
    case InitRule::embedding: {
      const int64_t row = i / c.hidden_size;
      return row == c.pad_token_id ? 0.0 : c.initializer_range * normal01(seed, stream, i);
    }
    case InitRule::unit_normal:
      return normal01(seed, stream, i);
    case InitRule::zeros:
      return 0.0;
    case InitRule::ones:
      return 1.0;
    case InitRule::a_log:  // shape [E, N]: column n holds log(n + 1)
      return std::log(double(i % c.mamba_d_state + 1));
    case InitRule::dt_bias:
      return c.dt_init == DtInit::zero ? 0.0
                                       : mamba_dt_bias(uniform01(seed, stream, i), c.dt_min, c.dt_max);
  }
  return 0.0;
}

}  // namespace

template <class T>
void init_params(T* params, const ParamLayout& layout, const ModelConfig& c, uint64_t seed) {
  std::fill(params, params + layout.storage, T(0));
  // Each value is drawn at its index in the whole tensor, so a tensor-parallel rank's share
  // equals its slice of the unsplit model's tensor (core/rng.h).
  for (const ParamTensor& t : layout.tensors) {
    const uint64_t stream = hash_name(t.name);
    for (const SliceRun& run : slice_runs(t, layout.tp)) {
      T* dst = params + t.offset + run.local;
#pragma omp parallel for schedule(static) if (run.length >= cpu::kMinParallelWork)
      for (int64_t i = 0; i < run.length; ++i) dst[i] = T(initial_value(t, c, seed, stream, run.full + i));
    }
  }
}

template void init_params<float>(float*, const ParamLayout&, const ModelConfig&, uint64_t);
template void init_params<double>(double*, const ParamLayout&, const ModelConfig&, uint64_t);

}  // namespace hymba
