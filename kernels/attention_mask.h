// Which keys a query may attend to (HYMBA_SPEC §2.5). Indices run over the concatenated
// sequence, meta tokens first. Shared by every backend so the mask has one definition.
#pragma once

#include <cstdint>

// Callable from CUDA device code too (kernels/cuda/attention.cu), so both backends use this one
// definition.
#ifdef __CUDACC__
#define HYMBA_HOST_DEVICE __host__ __device__
#else
#define HYMBA_HOST_DEVICE
#endif

namespace hymba {

// global layer:  k <= q
// other layers:  k <= q and (q - k <= window or k < meta)
// A text query thus sees the window+1 most recent positions (itself included) and all meta tokens.
HYMBA_HOST_DEVICE inline bool attention_allows(int64_t q, int64_t k, bool global, int64_t window, int64_t meta) {
  if (k > q) return false;
  return global || q - k <= window || k < meta;
}

}  // namespace hymba
