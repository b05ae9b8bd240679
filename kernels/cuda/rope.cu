// RoPE kernels, the simple correct version: one block per token. The block first takes cos and
// sin of the token's hd/2 angles into shared memory (in double, see rope.h), then rotates every
// (head, i) pair of the token; consecutive threads take consecutive i, so a warp reads and writes
// contiguous runs of each half of a head.
#include "cuda/rope.h"

#include <algorithm>
#include <climits>

#include "core/cuda_check.h"
#include "cuda/dtype.cuh"

namespace hymba::cuda {

namespace {

constexpr int kMaxThreads = 256;
// The cos/sin table of a token lives in shared memory: 2 · hd/2 floats.
constexpr int64_t kMaxHeadDim = 8192;

// out[token] = R(sign · angle) · in[token] for every head of the token (blockIdx.x = b·S + s):
// sign = +1 is the forward rotation, −1 its transpose. Each thread reads both elements of its
// pair before writing either, so out may alias in when their strides are equal.
template <class T>
__global__ void rope_kernel(T* out, int64_t ldout, const T* in, int64_t ldin,
                            const float* inv_freq, int64_t S, int pairs, int half, float sign) {
  extern __shared__ float table[];  // [2, half]: cos, then sign · sin
  const int64_t token = blockIdx.x;
  const double pos = double(token % S);
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    // pos < 2^31 and inv_freq has 24 bits, so the product is exact in double, as on the CPU.
    double sn, cs;
    sincos(pos * double(inv_freq[i]), &sn, &cs);
    table[i] = float(cs);
    table[half + i] = sign * float(sn);
  }
  __syncthreads();
  const T* x = in + token * ldin;  // [heads, hd]
  T* y = out + token * ldout;      // [heads, hd]
  for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
    const int h = p / half, i = p - h * half;
    const int64_t j = int64_t(h) * 2 * half + i;  // element i of head h; its partner is j + half
    const float x1 = to_float(x[j]), x2 = to_float(x[j + half]);
    const float c = table[i], s = table[half + i];
    y[j] = from_float<T>(x1 * c - x2 * s);
    y[j + half] = from_float<T>(x2 * c + x1 * s);
  }
}

template <class T>
void rope_launch(const char* op, T* out, int64_t ldout, const T* in, int64_t ldin,
                 const float* inv_freq, int64_t B, int64_t S, int64_t heads, int64_t hd, float sign,
                 cudaStream_t stream) {
  if (B < 0 || S < 0 || heads < 0) fail(op, ": negative size B ", B, ", S ", S, ", heads ", heads);
  if (hd < 0 || hd % 2 != 0) fail(op, ": head_dim ", hd, " is not a non-negative even number");
  if (hd > kMaxHeadDim) fail(op, ": head_dim ", hd, " is above the supported ", kMaxHeadDim);
  if (B == 0 || S == 0 || heads == 0 || hd == 0) return;
  const int64_t width = heads * hd;
  if (width > INT_MAX) fail(op, ": heads · head_dim ", width, " is above ", INT_MAX);
  if (B * S > INT_MAX) fail(op, ": B · S ", B * S, " tokens is above ", INT_MAX);
  if (ldout < width || ldin < width) {
    fail(op, ": token strides ", ldin, " and ", ldout, " must be at least heads · head_dim ", width);
  }
  const int half = int(hd / 2), pairs = int(width / 2);
  // Enough threads for the token's pairs, rounded to whole warps, at most kMaxThreads.
  const int threads = int(std::min<int64_t>(kMaxThreads, (pairs + 31) / 32 * 32));
  const size_t smem = size_t(2 * half) * sizeof(float);
  rope_kernel<T><<<unsigned(B * S), threads, smem, stream>>>(out, ldout, in, ldin, inv_freq, S,
                                                             pairs, half, sign);
  HYMBA_CUDA_CHECK_LAUNCH();
}

}  // namespace

template <class T>
void rope_forward(T* y, const T* x, int64_t ldx, const float* inv_freq, int64_t B, int64_t S,
                  int64_t heads, int64_t hd, cudaStream_t stream) {
  rope_launch("rope_forward", y, heads * hd, x, ldx, inv_freq, B, S, heads, hd, 1.0f, stream);
}

// The rotation is orthogonal, so its transpose is the rotation by the opposite angle.
template <class T>
void rope_backward(T* dx, int64_t lddx, const T* dy, const float* inv_freq, int64_t B, int64_t S,
                   int64_t heads, int64_t hd, cudaStream_t stream) {
  rope_launch("rope_backward", dx, lddx, dy, heads * hd, inv_freq, B, S, heads, hd, -1.0f, stream);
}

template void rope_forward<float>(float*, const float*, int64_t, const float*, int64_t, int64_t,
                                  int64_t, int64_t, cudaStream_t);
template void rope_forward<bf16>(bf16*, const bf16*, int64_t, const float*, int64_t, int64_t,
                                 int64_t, int64_t, cudaStream_t);
template void rope_backward<float>(float*, int64_t, const float*, const float*, int64_t, int64_t,
                                   int64_t, int64_t, cudaStream_t);
template void rope_backward<bf16>(bf16*, int64_t, const bf16*, const float*, int64_t, int64_t,
                                  int64_t, int64_t, cudaStream_t);

}  // namespace hymba::cuda
