#ifdef HYMBA_HAVE_CUDA

#include "model/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cpu/cross_entropy.h"
#include "cpu/embedding.h"
#include "cuda/adamw.h"
#include "cuda/attention.h"
#include "cuda/flash_attention.h"
#include "cuda/conv_silu.h"
#include "cuda/cross_entropy.h"
#include "cuda/elementwise.h"
#include "cuda/embedding.h"
#include "cuda/rmsnorm.h"
#include "cuda/rope.h"
#include "cuda/selective_scan.h"
#include "cuda/swiglu.h"

namespace hymba {

namespace {

// Floats of scratch the largest kernel call of this model needs (each kernel uses the buffer
// only while it runs, and calls are in stream order). Tensor parallelism's calls are covered by
// these: rmsnorm_backward_from_dots needs the norm workspace of a rank's part of the same rows
// (which never exceeds the whole row's), and cross_entropy_from_partials that of cross_entropy.
int64_t workspace_floats(const ModelConfig& c, const Dims& d, int64_t param_storage) {
  const auto& [B, T, M, S, BS, H, E, I, V, R, N, K, nh, nkv, hd, vd] = d;
  const cpu::AttentionShape window{B, S, nh, nkv, hd, vd, false, c.sliding_window, M};
  const cpu::AttentionShape global{B, S, nh, nkv, hd, vd, true, c.sliding_window, M};
  return std::max({cuda::rmsnorm_backward_workspace(BS, std::max(H, E)),
                   cuda::rmsnorm_backward_workspace(BS, std::max(R, N)),
                   cuda::rmsnorm_backward_workspace(T, H),
                   cuda::conv_silu_backward_workspace(B, S, E, K),
                   cuda::selective_scan_backward_workspace(cpu::ScanShape{B, S, E, N}),
                   cuda::attention_backward_workspace(window),
                   cuda::attention_backward_workspace(global),
                   cuda::flash_attention_backward_workspace(window),
                   cuda::flash_attention_backward_workspace(global),
                   cuda::cross_entropy_workspace(B * T),
                   cuda::sum_of_squares_workspace(param_storage),
                   int64_t(1)});
}

int64_t embedding_workspace_ints(const Dims& d) {
  return std::max<int64_t>(cuda::embedding_backward_workspace(d.B, d.T), 1);
}

}  // namespace

template <class T>
CudaBackend<T>::CudaBackend(const ModelConfig& c, const Dims& d, int64_t param_storage)
    : native_attention_(c.attention_backend == "native"),
      gemm_(kStream),
      workspace_(workspace_floats(c, d, param_storage)),
      ids_(d.B * d.T),
      targets_(d.B * d.T),
      embedding_workspace_(embedding_workspace_ints(d)) {}

template <class T>
int64_t CudaBackend<T>::buffer_bytes(const ModelConfig& c, const Dims& d, int64_t param_storage) {
  return workspace_floats(c, d, param_storage) * int64_t(sizeof(float)) +
         (2 * d.B * d.T + embedding_workspace_ints(d)) * int64_t(sizeof(int32_t)) +
         int64_t(cuda::Gemm::kWorkspaceBytes);
}

template <class T>
const float* CudaBackend<T>::host_floats(const T* p, int64_t n, std::vector<float>& staging) {
  staging.resize(size_t(n));
  if constexpr (std::is_same_v<T, float>) {
    HYMBA_CUDA_CHECK(cudaMemcpy(staging.data(), p, size_t(n) * sizeof(float), cudaMemcpyDeviceToHost));
  } else {  // download in T, then widen
    staging_.resize(size_t(n));
    HYMBA_CUDA_CHECK(cudaMemcpy(staging_.data(), p, size_t(n) * sizeof(T), cudaMemcpyDeviceToHost));
    for (int64_t i = 0; i < n; ++i) staging[size_t(i)] = float(staging_[size_t(i)]);
  }
  return staging.data();
}

template <class T>
void CudaBackend<T>::cast(T* dst, const float* src, int64_t n) {
  cuda::cast(dst, src, n, kStream);
}

template <class T>
double CudaBackend<T>::sum_of_squares(const float* x, int64_t n) {
  HYMBA_ASSERT(cuda::sum_of_squares_workspace(n) <= workspace_.size());
  return cuda::sum_of_squares(x, n, workspace_.data(), kStream);
}

template <class T>
void CudaBackend<T>::copy_rows(T* dst, int64_t lddst, const T* src, int64_t ldsrc, int64_t rows,
                            int64_t cols) {
  cuda::copy_rows(dst, lddst, src, ldsrc, rows, cols, kStream);
}

template <class T>
void CudaBackend<T>::embedding_forward(T* x, const int32_t* ids, const T* table, const float* meta,
                                    int64_t B, int64_t Tlen, int64_t M, int64_t H, int64_t V,
                                    cpu::VocabRange vocab) {
  cpu::check_token_ids(ids, B, Tlen, V);
  upload(ids_.data(), ids, B * Tlen);
  cuda::embedding_forward(x, ids_.data(), table, meta, B, Tlen, M, H, kStream, vocab);
}

template <class T>
void CudaBackend<T>::embedding_backward(float* dtable, float* dmeta, const T* dx, const int32_t* ids, int64_t B,
                                     int64_t Tlen, int64_t M, int64_t H, int64_t pad_id, cpu::VocabRange vocab) {
  cuda::embedding_backward(dtable, dmeta, dx, ids, B, Tlen, M, H, pad_id, embedding_workspace_.data(), kStream,
                           vocab);
}

template <class T>
void CudaBackend<T>::rmsnorm_forward(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx, const float* w,
                                  int64_t rows, int64_t dim, double eps, bool average) {
  cuda::rmsnorm_forward(y, ldy, rstd, x, ldx, w, rows, dim, eps, kStream, average);
}

template <class T>
void CudaBackend<T>::rmsnorm_backward(T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy,
                                   const T* x, int64_t ldx, const float* w, const float* rstd, int64_t rows,
                                   int64_t dim, bool accumulate_dx) {
  cuda::rmsnorm_backward(dx, lddx, dw, dy, lddy, x, ldx, w, rstd, rows, dim, accumulate_dx, workspace_.data(),
                         kStream);
}

template <class T>
void CudaBackend<T>::rmsnorm_sum_squares(float* sums, const T* x, int64_t ldx, int64_t rows, int64_t dim) {
  cuda::rmsnorm_sum_squares(sums, x, ldx, rows, dim, kStream);
}

template <class T>
void CudaBackend<T>::rmsnorm_forward_from_sums(T* y, int64_t ldy, float* rstd, const T* x, int64_t ldx,
                                               const float* w, const float* sums, int64_t rows, int64_t dim,
                                               int64_t full_dim, double eps, bool average) {
  cuda::rmsnorm_forward_from_sums(y, ldy, rstd, x, ldx, w, sums, rows, dim, full_dim, eps, kStream, average);
}

template <class T>
void CudaBackend<T>::rmsnorm_backward_dots(float* dots, const T* dy, int64_t lddy, const T* x, int64_t ldx,
                                           const float* w, const float* rstd, int64_t rows, int64_t dim) {
  cuda::rmsnorm_backward_dots(dots, dy, lddy, x, ldx, w, rstd, rows, dim, kStream);
}

template <class T>
void CudaBackend<T>::rmsnorm_backward_from_dots(T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy,
                                                const T* x, int64_t ldx, const float* w, const float* rstd,
                                                const float* dots, int64_t rows, int64_t dim, int64_t full_dim,
                                                bool accumulate_dx) {
  // A rank's part of a row is narrower than the row, and the workspace covers the whole norms.
  HYMBA_ASSERT(cuda::rmsnorm_backward_workspace(rows, dim) <= workspace_.size());
  cuda::rmsnorm_backward_from_dots(dx, lddx, dw, dy, lddy, x, ldx, w, rstd, dots, rows, dim, full_dim, accumulate_dx,
                                   workspace_.data(), kStream);
}

template <class T>
void CudaBackend<T>::linear_forward(T* y, int64_t ldy, const T* x, int64_t ldx, const T* w,
                                 int64_t rows, int64_t in, int64_t out, bool accumulate) {
  cuda::linear_forward(gemm_, y, ldy, x, ldx, w, rows, in, out, accumulate);
}

template <class T>
void CudaBackend<T>::linear_backward(T* dx, int64_t lddx, float* dw, const T* dy, int64_t lddy,
                                  const T* x, int64_t ldx, const T* w, int64_t rows, int64_t in,
                                  int64_t out, bool accumulate_dx, double dx_alpha) {
  cuda::linear_backward(gemm_, dx, lddx, dw, dy, lddy, x, ldx, w, rows, in, out, accumulate_dx,
                        float(dx_alpha));
}

template <class T>
void CudaBackend<T>::rope_forward(T* y, const T* x, int64_t ldx, const float* inv_freq, int64_t B,
                               int64_t S, int64_t heads, int64_t hd) {
  cuda::rope_forward(y, x, ldx, inv_freq, B, S, heads, hd, kStream);
}

template <class T>
void CudaBackend<T>::rope_backward(T* dx, int64_t lddx, const T* dy, const float* inv_freq, int64_t B,
                                int64_t S, int64_t heads, int64_t hd) {
  cuda::rope_backward(dx, lddx, dy, inv_freq, B, S, heads, hd, kStream);
}

namespace {

// The one rule of model.attention_backend: flash for native, bf16 and a shape the kernels take.
bool flash_applies(bool bf16, bool native, const cpu::AttentionShape& s, int64_t ldv) {
  return bf16 && native && cuda::flash_attention_supports(s, ldv);
}

}  // namespace

template <class T>
bool CudaBackend<T>::uses_flash_attention(const cpu::AttentionShape& s, int64_t ldv) const {
  return flash_applies(std::is_same_v<T, __nv_bfloat16>, native_attention_, s, ldv);
}

const char* cuda_attention_kernels(const ModelConfig& c, bool bf16) {
  // The v columns are a slice of in_proj's output: its row stride is the whole width, which
  // only the alignment check reads, and every in_proj width of a config with these heads passes.
  const cpu::AttentionShape s{1, 1, c.num_attention_heads, c.num_key_value_heads, c.head_dim(),
                              c.v_head_dim(), false, c.sliding_window, c.num_memory_tokens};
  const int64_t contiguous_ldv = s.nkv * s.vd;
  return flash_applies(bf16, c.attention_backend == "native", s, contiguous_ldv) ? "flash"
                                                                                 : "simple";
}

template <class T>
void CudaBackend<T>::attention_forward(T* out, float* lse, const T* q, const T* k, const T* v,
                                    int64_t ldv, const cpu::AttentionShape& s) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (uses_flash_attention(s, ldv)) {
      cuda::flash_attention_forward(out, lse, q, k, v, ldv, s, kStream);
      return;
    }
  }
  cuda::attention_forward(out, lse, q, k, v, ldv, s, kStream);
}

template <class T>
void CudaBackend<T>::attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q,
                                     const T* k, const T* v, int64_t ldv, const T* out,
                                     const float* lse, const cpu::AttentionShape& s) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if (uses_flash_attention(s, ldv)) {
      cuda::flash_attention_backward(dq, dk, dv, dout, q, k, v, ldv, out, lse, s,
                                     workspace_.data(), kStream);
      return;
    }
  }
  cuda::attention_backward(dq, dk, dv, dout, q, k, v, ldv, out, lse, s, workspace_.data(), kStream);
}

template <class T>
void CudaBackend<T>::conv_silu_forward(T* u, const T* x, int64_t ldx, const float* w, const float* bias,
                                       int64_t B, int64_t S, int64_t E, int64_t K) {
  cuda::conv_silu_forward(u, x, ldx, w, bias, B, S, E, K, kStream);
}

template <class T>
void CudaBackend<T>::conv_silu_backward(T* dx, int64_t lddx, float* dw, float* dbias, const T* du,
                                        const T* x, int64_t ldx, const float* w, const float* bias,
                                        int64_t B, int64_t S, int64_t E, int64_t K) {
  cuda::conv_silu_backward(dx, lddx, dw, dbias, du, x, ldx, w, bias, B, S, E, K, workspace_.data(), kStream);
}

template <class T>
int64_t CudaBackend<T>::scan_state_count(const cpu::ScanShape& s) {
  return cuda::selective_scan_checkpoint_floats(s);
}

template <class T>
void CudaBackend<T>::selective_scan_forward(T* out, float* states,
                                            const cpu::ScanInputs<T, float>& in,
                                            const cpu::ScanShape& s) {
  cuda::selective_scan_forward(out, /*hT=*/nullptr, states, in, s, kStream);
}

template <class T>
void CudaBackend<T>::selective_scan_backward(const cpu::ScanGrads<T, float>& grads, const T* dout,
                                             const cpu::ScanInputs<T, float>& in,
                                             const float* states, const cpu::ScanShape& s) {
  cuda::selective_scan_backward(grads, dout, /*dhT=*/nullptr, in, states, s, workspace_.data(),
                                kStream);
}

template <class T>
void CudaBackend<T>::swiglu_forward(T* a, const T* g, const T* up, int64_t n) {
  cuda::swiglu_forward(a, g, up, n, kStream);
}

template <class T>
void CudaBackend<T>::swiglu_backward(T* dg, T* dup, const T* da, const T* g, const T* up,
                                  int64_t n) {
  cuda::swiglu_backward(dg, dup, da, g, up, n, kStream);
}

template <class T>
double CudaBackend<T>::cross_entropy(T* dlogits, const T* logits, const int32_t* targets, int64_t rows,
                                  int64_t V, double grad_scale) {
  cpu::check_targets(targets, rows, V);
  upload(targets_.data(), targets, rows);
  uploaded_targets_ = targets;
  return cuda::cross_entropy(dlogits, logits, targets_.data(), rows, V, grad_scale, workspace_.data(), kStream);
}

template <class T>
void CudaBackend<T>::cross_entropy_partials(float* stats, const T* logits, int64_t ld, cpu::VocabRange vocab,
                                            const int32_t* targets, int64_t rows, int64_t V) {
  cpu::check_targets(targets, rows, V);
  HYMBA_ASSERT(rows <= targets_.size());
  upload(targets_.data(), targets, rows);
  uploaded_targets_ = targets;
  cuda::cross_entropy_partials(stats, logits, ld, vocab, targets_.data(), rows, kStream);
}

template <class T>
double CudaBackend<T>::cross_entropy_from_partials(T* dlogits, const T* logits, int64_t ld, cpu::VocabRange vocab,
                                                   const float* all, int64_t ranks, const int32_t* targets,
                                                   int64_t rows, double grad_scale) {
  HYMBA_ASSERT(targets == uploaded_targets_);  // the partials call's targets are on the device
  HYMBA_ASSERT(cuda::cross_entropy_workspace(rows) <= workspace_.size());
  return cuda::cross_entropy_from_partials(dlogits, logits, ld, vocab, all, ranks, targets_.data(), rows, grad_scale,
                                           workspace_.data(), kStream);
}

template class CudaBackend<float>;
template class CudaBackend<__nv_bfloat16>;

}  // namespace hymba

#endif
