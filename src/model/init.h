// Parameter initialisation (HYMBA_SPEC §3; dt bias per `model.dt_init`, §6). Each value is a
// pure function of (seed, tensor name, element index), see core/rng.h.
#pragma once

#include <cstdint>

#include "config/config.h"
#include "model/param_layout.h"

namespace hymba {

// Writes every tensor of `layout` into `params` (padding between tensors is zeroed).
template <class T>
void init_params(T* params, const ParamLayout& layout, const ModelConfig& c, uint64_t seed);

}  // namespace hymba
