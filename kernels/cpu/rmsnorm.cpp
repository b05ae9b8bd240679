#include "cpu/rmsnorm.h"

#include <cmath>

#include "cpu/parallel.h"

namespace hymba::cpu {

namespace {

// The row pieces every variant below is made of. Row statistics accumulate in double for both
// element types: the CPU path is the reference.

template <class T>
double row_sum_squares(const T* x, int64_t dim) {
  double ss = 0;
  for (int64_t i = 0; i < dim; ++i) ss += double(x[i]) * double(x[i]);
  return ss;
}

// y = w ⊙ (x · rstd), with rstd from the whole row's sum of squares over full_dim elements; or,
// averaging, y = (y + w ⊙ (x · rstd)) · 0.5.
template <class T>
T normalise_row(T* y, const T* x, const T* w, double sum_squares, int64_t dim, int64_t full_dim, double eps,
                bool average) {
  const T rs = T(1.0 / std::sqrt(sum_squares / double(full_dim) + eps));
  for (int64_t i = 0; i < dim; ++i) {
    if (average) {
      // volatile: the norm is rounded to T before the add, as a stored norm is (with FMA the
      // compiler would otherwise contract the product into the sum).
      const volatile T v = w[i] * (x[i] * rs);
      y[i] = (y[i] + v) * T(0.5);
    } else {
      y[i] = w[i] * (x[i] * rs);
    }
  }
  return rs;
}

// Σ (w⊙dy) ⊙ x̂ over the row's dim elements.
template <class T>
double row_backward_dot(const T* dy, const T* x, const T* w, double rs, int64_t dim) {
  double dot = 0;
  for (int64_t i = 0; i < dim; ++i) dot += double(w[i]) * dy[i] * (x[i] * rs);
  return dot;
}

// dx (= or +=) and dw_acc (+=) of one row, from the whole row's dot over full_dim elements.
template <class T>
void backward_row(T* dx, double* dw_acc, const T* dy, const T* x, const T* w, double rs, double dot,
                  int64_t dim, int64_t full_dim, bool accumulate_dx) {
  const double mean = dot / double(full_dim);
  for (int64_t i = 0; i < dim; ++i) {
    const double xhat = x[i] * rs;
    dw_acc[i] += double(dy[i]) * xhat;
    const T g = T(rs * (double(w[i]) * dy[i] - x[i] * rs * mean));
    dx[i] = accumulate_dx ? dx[i] + g : g;
  }
}

}  // namespace

template <class T>
void rmsnorm_forward(T* y, int64_t ldy, T* rstd, const T* x, int64_t ldx, const T* w,
                     int64_t rows, int64_t dim, double eps, bool average) {
#pragma omp parallel for schedule(static) if (rows * dim >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * ldx;  // [dim]
    rstd[r] = normalise_row(y + r * ldy, xr, w, row_sum_squares(xr, dim), dim, dim, eps, average);
  }
}

template <class T>
void rmsnorm_backward(T* dx, int64_t lddx, T* dw, const T* dy, int64_t lddy, const T* x,
                      int64_t ldx, const T* w, const T* rstd, int64_t rows, int64_t dim,
                      bool accumulate_dx) {
  parallel_for_reduce(rows, dim, dw, rows * dim, [&](int64_t r, double* dw_acc) {
    const T* xr = x + r * ldx;     // [dim]
    const T* dyr = dy + r * lddy;  // [dim]
    const double dot = row_backward_dot(dyr, xr, w, double(rstd[r]), dim);
    backward_row(dx + r * lddx, dw_acc, dyr, xr, w, double(rstd[r]), dot, dim, dim, accumulate_dx);
  });
}

template <class T>
void rmsnorm_sum_squares(T* sums, const T* x, int64_t ldx, int64_t rows, int64_t dim) {
#pragma omp parallel for schedule(static) if (rows * dim >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) sums[r] = T(row_sum_squares(x + r * ldx, dim));
}

template <class T>
void rmsnorm_forward_from_sums(T* y, int64_t ldy, T* rstd, const T* x, int64_t ldx, const T* w,
                               const T* sums, int64_t rows, int64_t dim, int64_t full_dim, double eps,
                               bool average) {
#pragma omp parallel for schedule(static) if (rows * dim >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) {
    const double ss = double(sums[r]);  // read before rstd is written: they may alias
    rstd[r] = normalise_row(y + r * ldy, x + r * ldx, w, ss, dim, full_dim, eps, average);
  }
}

template <class T>
void rmsnorm_backward_dots(T* dots, const T* dy, int64_t lddy, const T* x, int64_t ldx, const T* w,
                           const T* rstd, int64_t rows, int64_t dim) {
#pragma omp parallel for schedule(static) if (rows * dim >= kMinParallelWork)
  for (int64_t r = 0; r < rows; ++r) dots[r] = T(row_backward_dot(dy + r * lddy, x + r * ldx, w, double(rstd[r]), dim));
}

template <class T>
void rmsnorm_backward_from_dots(T* dx, int64_t lddx, T* dw, const T* dy, int64_t lddy, const T* x,
                                int64_t ldx, const T* w, const T* rstd, const T* dots, int64_t rows,
                                int64_t dim, int64_t full_dim, bool accumulate_dx) {
  parallel_for_reduce(rows, dim, dw, rows * dim, [&](int64_t r, double* dw_acc) {
    backward_row(dx + r * lddx, dw_acc, dy + r * lddy, x + r * ldx, w, double(rstd[r]), double(dots[r]), dim,
                 full_dim, accumulate_dx);
  });
}

#define HYMBA_INSTANTIATE(T)                                                                                 \
  template void rmsnorm_forward<T>(T*, int64_t, T*, const T*, int64_t, const T*, int64_t, int64_t, double,  \
                                   bool);                                                                   \
  template void rmsnorm_backward<T>(T*, int64_t, T*, const T*, int64_t, const T*, int64_t, const T*,        \
                                    const T*, int64_t, int64_t, bool);                                      \
  template void rmsnorm_sum_squares<T>(T*, const T*, int64_t, int64_t, int64_t);                            \
  template void rmsnorm_forward_from_sums<T>(T*, int64_t, T*, const T*, int64_t, const T*, const T*,        \
                                             int64_t, int64_t, int64_t, double, bool);                      \
  template void rmsnorm_backward_dots<T>(T*, const T*, int64_t, const T*, int64_t, const T*, const T*,      \
                                         int64_t, int64_t);                                                 \
  template void rmsnorm_backward_from_dots<T>(T*, int64_t, T*, const T*, int64_t, const T*, int64_t,        \
                                              const T*, const T*, const T*, int64_t, int64_t, int64_t, bool);
HYMBA_INSTANTIATE(float)
HYMBA_INSTANTIATE(double)
#undef HYMBA_INSTANTIATE

}  // namespace hymba::cpu
