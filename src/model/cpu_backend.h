// The CPU backend of the model (HymbaModelOn<CpuBackend<F>> = HymbaModel<F>): the reference
// kernels of kernels/cpu, in float (training) or double (gradient checks), on host memory. The
// CUDA backend (cuda_backend.h) offers the same calls on device memory.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "cpu/attention.h"
#include "cpu/conv_silu.h"
#include "cpu/cross_entropy.h"
#include "cpu/elementwise.h"
#include "cpu/embedding.h"
#include "cpu/gemm.h"
#include "cpu/rmsnorm.h"
#include "cpu/rope.h"
#include "cpu/selective_scan.h"
#include "cpu/swiglu.h"
#include "model/dims.h"
#include "model/param_layout.h"
#include "optim/adamw.h"

namespace hymba {

// Each op of the model, forwarded to its reference kernel with the same arguments.
#define HYMBA_CPU_OP(name)                                 \
  template <class... Args>                                 \
  auto name(Args&&... args) {                              \
    return cpu::name(std::forward<Args>(args)...);         \
  }

template <class F>
class CpuBackend {
 public:
  using Act = F;    // activations, parameters, gradients, statistics: one type on the CPU
  using Param = F;
  using Stat = F;
  template <class T>
  using Array = std::vector<T>;
  static constexpr const char* kName = "cpu";

  CpuBackend(const ModelConfig&, const Dims&, int64_t /*param_storage*/) {}
  static int64_t buffer_bytes(const ModelConfig&, const Dims&, int64_t) { return 0; }  // holds none

  template <class T>
  static Array<T> make_array(int64_t n) { return Array<T>(size_t(n), T(0)); }
  template <class T>
  static Array<T> to_array(const std::vector<T>& host) { return host; }
  // n values at p as floats: p itself, or a converted copy in `staging`.
  const float* host_floats(const F* p, int64_t n, std::vector<float>& staging) {
    if constexpr (std::is_same_v<F, float>) {
      return p;
    } else {
      staging.assign(p, p + n);
      return staging.data();
    }
  }
  template <class T>
  void zero(T* p, int64_t n) { std::fill(p, p + n, T(0)); }
  template <class T>
  void copy(T* dst, const T* src, int64_t n) { std::copy(src, src + n, dst); }
  double sum_of_squares(const F* x, int64_t n) { return hymba::sum_of_squares(x, n); }

  HYMBA_CPU_OP(copy_rows)
  HYMBA_CPU_OP(embedding_forward)
  HYMBA_CPU_OP(embedding_backward)
  HYMBA_CPU_OP(rmsnorm_forward)
  HYMBA_CPU_OP(rmsnorm_backward)
  HYMBA_CPU_OP(rmsnorm_sum_squares)
  HYMBA_CPU_OP(rmsnorm_forward_from_sums)
  HYMBA_CPU_OP(rmsnorm_backward_dots)
  HYMBA_CPU_OP(rmsnorm_backward_from_dots)
  HYMBA_CPU_OP(linear_forward)
  HYMBA_CPU_OP(linear_backward)
  HYMBA_CPU_OP(rope_forward)
  HYMBA_CPU_OP(rope_backward)
  HYMBA_CPU_OP(attention_forward)
  HYMBA_CPU_OP(attention_backward)
  HYMBA_CPU_OP(conv_silu_forward)
  HYMBA_CPU_OP(conv_silu_backward)
  // The CPU backward recomputes the scan's states from its inputs: the forward saves none.
  static int64_t scan_state_count(const cpu::ScanShape&) { return 0; }
  void selective_scan_forward(F* out, F* /*states: none*/, const cpu::ScanInputs<F>& in,
                              const cpu::ScanShape& s) {
    cpu::selective_scan_forward<F>(out, /*hT=*/nullptr, in, s);
  }
  void selective_scan_backward(const cpu::ScanGrads<F>& grads, const F* dout,
                               const cpu::ScanInputs<F>& in, const F* /*states: none*/,
                               const cpu::ScanShape& s) {
    cpu::selective_scan_backward<F>(grads, dout, /*dhT=*/nullptr, in, s);
  }
  HYMBA_CPU_OP(swiglu_forward)
  HYMBA_CPU_OP(swiglu_backward)
  HYMBA_CPU_OP(cross_entropy)
  // Vocabulary-parallel cross-entropy (cpu/cross_entropy.h); targets [rows] are checked against
  // the whole vocabulary V.
  void cross_entropy_partials(F* stats, const F* logits, int64_t ld, cpu::VocabRange vocab,
                              const int32_t* targets, int64_t rows, int64_t V) {
    cpu::check_targets(targets, rows, V);
    cpu::cross_entropy_partials(stats, logits, ld, vocab, targets, rows);
  }
  double cross_entropy_from_partials(F* dlogits, const F* logits, int64_t ld, cpu::VocabRange vocab,
                                     const F* all, int64_t ranks, const int32_t* targets, int64_t rows,
                                     double grad_scale) {
    return cpu::cross_entropy_from_partials(dlogits, logits, ld, vocab, all, ranks, targets, rows, grad_scale);
  }
};

#undef HYMBA_CPU_OP

}  // namespace hymba
