#include "cpu/rmsnorm.h"

#include <cmath>

#include "cpu/parallel.h"

namespace hymba::cpu {

// Row statistics accumulate in double for both element types: the CPU path is the reference.
template <class T>
void rmsnorm_forward(T* y, int64_t ldy, T* rstd, const T* x, int64_t ldx, const T* w,
                     int64_t rows, int64_t dim, double eps) {
#pragma omp parallel for schedule(static) if (rows * dim >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * ldx;  // [dim]
    T* yr = y + r * ldy;        // [dim]
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(xr[i]) * double(xr[i]);
    const T rs = T(1.0 / std::sqrt(ss / double(dim) + eps));
    rstd[r] = rs;
    for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * rs);
  }
}

template <class T>
void rmsnorm_backward(T* dx, int64_t lddx, T* dw, const T* dy, int64_t lddy, const T* x,
                      int64_t ldx, const T* w, const T* rstd, int64_t rows, int64_t dim,
                      bool accumulate_dx) {
  parallel_for_reduce(rows, dim, dw, rows * dim, [&](int64_t r, double* dw_acc) {
    const T* xr = x + r * ldx;    // [dim]
    const T* dyr = dy + r * lddy;  // [dim]
    T* dxr = dx + r * lddx;        // [dim]
    const double rs = rstd[r];
    double dot = 0;  // Σ (w⊙dy) ⊙ x̂ over the row
    for (int64_t i = 0; i < dim; ++i) {
      const double xhat = xr[i] * rs;
      dot += double(w[i]) * dyr[i] * xhat;
      dw_acc[i] += double(dyr[i]) * xhat;
    }
    const double mean = dot / double(dim);
    for (int64_t i = 0; i < dim; ++i) {
      const T g = T(rs * (double(w[i]) * dyr[i] - xr[i] * rs * mean));
      dxr[i] = accumulate_dx ? dxr[i] + g : g;
    }
  });
}

template void rmsnorm_forward<float>(float*, int64_t, float*, const float*, int64_t,
                                     const float*, int64_t, int64_t, double);
template void rmsnorm_forward<double>(double*, int64_t, double*, const double*, int64_t,
                                      const double*, int64_t, int64_t, double);
template void rmsnorm_backward<float>(float*, int64_t, float*, const float*, int64_t,
                                      const float*, int64_t, const float*, const float*, int64_t,
                                      int64_t, bool);
template void rmsnorm_backward<double>(double*, int64_t, double*, const double*, int64_t,
                                       const double*, int64_t, const double*, const double*,
                                       int64_t, int64_t, bool);

}  // namespace hymba::cpu
