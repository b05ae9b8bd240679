// SwiGLU gate of the MLP (HYMBA_SPEC §2.8): a = silu(g) ⊙ up, elementwise over n values.
#pragma once

#include <cstdint>

namespace hymba::cpu {

// g, up, a [n]
template <class T>
void swiglu_forward(T* a, const T* g, const T* up, int64_t n);

// dg = da ⊙ up ⊙ silu'(g), dup = da ⊙ silu(g)   (both written)
template <class T>
void swiglu_backward(T* dg, T* dup, const T* da, const T* g, const T* up, int64_t n);

}  // namespace hymba::cpu
