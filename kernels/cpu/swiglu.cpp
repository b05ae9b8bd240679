#include "cpu/swiglu.h"

#include "cpu/activations.h"
#include "cpu/parallel.h"

namespace hymba::cpu {

template <class T>
void swiglu_forward(T* a, const T* g, const T* up, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i) a[i] = silu(g[i]) * up[i];
}

template <class T>
void swiglu_backward(T* dg, T* dup, const T* da, const T* g, const T* up, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= kMinParallelWork)
  for (int64_t i = 0; i < n; ++i) {
    dg[i] = da[i] * up[i] * silu_grad(g[i]);
    dup[i] = da[i] * silu(g[i]);
  }
}

template void swiglu_forward<float>(float*, const float*, const float*, int64_t);
template void swiglu_forward<double>(double*, const double*, const double*, int64_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*,
                                     int64_t);
template void swiglu_backward<double>(double*, double*, const double*, const double*,
                                      const double*, int64_t);

}  // namespace hymba::cpu
