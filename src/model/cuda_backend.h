// The CUDA backend of the model (cuda_model.h): the kernels of kernels/cuda behind the same calls
// as the CPU backend (cpu_backend.h), on device memory. Activations are T: float (the fp32 path)
// or bf16 (mixed precision); parameters, gradients and statistics are float. It owns what the
// kernels need besides their operands: the cuBLASLt plans, one scratch buffer sized up front for
// the largest user, and device copies of the batch's ids and targets. Everything runs in order on
// the default stream; calls that return a number (the loss, the gradient norm) wait for it.
// Built only with CUDA.
#pragma once

#ifdef HYMBA_HAVE_CUDA

#include <cuda_bf16.h>

#include <cstdint>
#include <vector>

#include "config/config.h"
#include "cpu/attention.h"
#include "cpu/selective_scan.h"
#include "cpu/vocab_range.h"
#include "cuda/device_array.h"
#include "cuda/gemm.h"
#include "model/dims.h"
#include "model/param_layout.h"

namespace hymba {

template <class T>
class CudaBackend {
 public:
  using Act = T;
  using Param = float;
  using Stat = float;
  template <class U>
  using Array = cuda::DeviceArray<U>;
  static constexpr const char* kName = "cuda";

  CudaBackend(const ModelConfig& c, const Dims& d, int64_t param_storage);  // elements of the parameter buffer
  // Device bytes the constructor allocates for these sizes: kernel scratch, the batch's ids and
  // targets, cuBLAS's workspace.
  static int64_t buffer_bytes(const ModelConfig& c, const Dims& d, int64_t param_storage);

  // Zero-filled device memory of n elements, and a device copy of a host vector.
  template <class U>
  static Array<U> make_array(int64_t n) { return Array<U>::zeros(n); }
  template <class U>
  static Array<U> to_array(const std::vector<U>& host) { return Array<U>(host); }
  template <class U>
  void zero(U* p, int64_t n) { HYMBA_CUDA_CHECK(cudaMemsetAsync(p, 0, size_t(n) * sizeof(U), kStream)); }
  template <class U>
  void copy(U* dst, const U* src, int64_t n) {
    HYMBA_CUDA_CHECK(cudaMemcpyAsync(dst, src, size_t(n) * sizeof(U), cudaMemcpyDeviceToDevice, kStream));
  }
  // The n activations at device pointer p as floats in `staging` (host memory).
  const float* host_floats(const T* p, int64_t n, std::vector<float>& staging);
  // dst = src rounded to T: the GEMMs' copy of the fp32 weights.
  void cast(T* dst, const float* src, int64_t n);
  double sum_of_squares(const float* x, int64_t n);  // Σ x², returned to the host (a sync)
  // The GEMMs' cuBLASLt plans: the trainer times and keeps their algorithms (train.gemm_algorithms).
  cuda::Gemm& gemm() { return gemm_; }

  void copy_rows(T* dst, int64_t lddst, const T* src, int64_t ldsrc, int64_t rows, int64_t cols);

  // ids [B, T] and targets [B·T] are host memory (checked there, then copied to the device).
  // vocab: the table rows this rank holds (tensor parallelism; kernels/cpu/embedding.h).
  void embedding_forward(T* x, const int32_t* ids, const T* table, const float* meta, int64_t B,
                         int64_t Tlen, int64_t M, int64_t H, int64_t V, cpu::VocabRange vocab = {});
  void embedding_backward(float* dtable, float* dmeta, const T* dx, const int32_t* ids, int64_t B,
                          int64_t Tlen, int64_t M, int64_t H, int64_t pad_id, cpu::VocabRange vocab = {});
  void rmsnorm_forward(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx, const float* w,
                       int64_t rows, int64_t dim, double eps, bool average = false);
  void rmsnorm_backward(T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy, const T* x,
                        int64_t ldx, const float* w, const float* rstd, int64_t rows, int64_t dim,
                        bool accumulate_dx = false);
  // The split RMSNorm of tensor parallelism (kernels/cpu/rmsnorm.h): sums and dots [rows] are
  // all-reduced by the caller between the halves.
  void rmsnorm_sum_squares(float* sums, const T* x, int64_t ldx, int64_t rows, int64_t dim);
  void rmsnorm_forward_from_sums(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx, const float* w,
                                 const float* sums, int64_t rows, int64_t dim, int64_t full_dim, double eps,
                                 bool average = false);
  void rmsnorm_backward_dots(float* dots, const T* dy, int64_t lddy, const T* x, int64_t ldx, const float* w,
                             const float* rstd, int64_t rows, int64_t dim);
  void rmsnorm_backward_from_dots(T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy, const T* x,
                                  int64_t ldx, const float* w, const float* rstd, const float* dots,
                                  int64_t rows, int64_t dim, int64_t full_dim, bool accumulate_dx = false);
  void linear_forward(T* y, int64_t ldy, const T* x, int64_t ldx, const T* w, int64_t rows,
                      int64_t in, int64_t out, bool accumulate = false);
  void linear_backward(T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy, const T* x,
                       int64_t ldx, const T* w, int64_t rows, int64_t in, int64_t out,
                       bool accumulate_dx = false, double dx_alpha = 1.0);
  void rope_forward(T* y, const T* x, int64_t ldx, const float* inv_freq, int64_t B, int64_t S,
                    int64_t heads, int64_t hd);
  void rope_backward(T* dx, int64_t lddx, const T* dy, const float* inv_freq, int64_t B, int64_t S,
                     int64_t heads, int64_t hd);
  // The flash kernels where model.attention_backend is native and they take the activation type
  // and shape (bf16, heads of 64 / 128), else the simple ones.
  bool uses_flash_attention(const cpu::AttentionShape& s, int64_t ldv) const;
  void attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, int64_t ldv,
                         const cpu::AttentionShape& s);
  void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                          const T* v, int64_t ldv, const T* out, const float* lse,
                          const cpu::AttentionShape& s);
  void conv_silu_forward(T* u, const T* x, int64_t ldx, const float* w, const float* bias, int64_t B,
                         int64_t S, int64_t E, int64_t K);
  void conv_silu_backward(T* dx, int64_t lddx, float* dw, float* dbias, const T* du, const T* x,
                          int64_t ldx, const float* w, const float* bias, int64_t B, int64_t S,
                          int64_t E, int64_t K);
  // The forward saves the scan's chunk states (scan_state_count floats) for the backward.
  static int64_t scan_state_count(const cpu::ScanShape& s);
  void selective_scan_forward(T* out, float* states, const cpu::ScanInputs<T, float>& in,
                              const cpu::ScanShape& s);
  void selective_scan_backward(const cpu::ScanGrads<T, float>& grads, const T* dout,
                               const cpu::ScanInputs<T, float>& in, const float* states,
                               const cpu::ScanShape& s);
  void swiglu_forward(T* a, const T* g, const T* up, int64_t n);
  void swiglu_backward(T* dg, T* dup, const T* da, const T* g, const T* up, int64_t n);
  double cross_entropy(T* dlogits, const T* logits, const int32_t* targets, int64_t rows, int64_t V,
                       double grad_scale);
  // Vocabulary-parallel cross-entropy (kernels/cpu/cross_entropy.h): stats [rows, 3] and all
  // [ranks, rows, 3] are device memory, gathered by the caller between the two calls.
  // targets: host [rows]; checked against the whole vocabulary V and uploaded, as cross_entropy does.
  void cross_entropy_partials(float* stats, const T* logits, int64_t ld, cpu::VocabRange vocab,
                              const int32_t* targets, int64_t rows, int64_t V);
  // targets: the same host array as the partials call (uploaded there; not read again).
  double cross_entropy_from_partials(T* dlogits, const T* logits, int64_t ld, cpu::VocabRange vocab,
                                     const float* all, int64_t ranks, const int32_t* targets, int64_t rows,
                                     double grad_scale);

 private:
  template <class U>
  void upload(U* dst, const U* host, int64_t n) {
    HYMBA_CUDA_CHECK(cudaMemcpy(dst, host, size_t(n) * sizeof(U), cudaMemcpyHostToDevice));
  }

  static constexpr cudaStream_t kStream = nullptr;  // the default stream: every call in order
  bool native_attention_;                   // model.attention_backend == native
  cuda::Gemm gemm_;
  cuda::DeviceArray<float> workspace_;      // scratch of the kernel running now
  std::vector<T> staging_;                  // host_floats' download
  cuda::DeviceArray<int32_t> ids_, targets_;  // [B·T] the batch's ids and targets
  const int32_t* uploaded_targets_ = nullptr;  // the host array targets_ was copied from last
  cuda::DeviceArray<int32_t> embedding_workspace_;
};

// The attention kernels a CUDA model of config c runs at precision bf16 or fp32, for the run's
// log: "flash" or "simple" (see model.attention_backend).
const char* cuda_attention_kernels(const ModelConfig& c, bool bf16);

extern template class CudaBackend<float>;
extern template class CudaBackend<__nv_bfloat16>;

}  // namespace hymba

#endif
