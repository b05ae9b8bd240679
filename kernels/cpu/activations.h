// Scalar activations shared by the CPU kernels. Written for float and double alike.
#pragma once

#include <cmath>

namespace hymba::cpu {

template <class T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

template <class T>
inline T silu(T x) {
  return x * sigmoid(x);
}

// d silu / dx = σ(x) · (1 + x · (1 − σ(x)))
template <class T>
inline T silu_grad(T x) {
  T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

// softplus with PyTorch's threshold 20 (identity above it); its derivative is σ(x) below.
template <class T>
inline T softplus(T x) {
  return x > T(20) ? x : std::log1p(std::exp(x));
}

template <class T>
inline T softplus_grad(T x) {
  return x > T(20) ? T(1) : sigmoid(x);
}

}  // namespace hymba::cpu
