// The Hymba model (HYMBA_SPEC §2): a fixed list of layers, each with a hand-written forward and
// backward (tape-free, DESIGN.md §3), written once over a backend that supplies the kernels and
// the memory: HymbaModel<F> runs on the CPU reference kernels (cpu_backend.h), CudaHymbaModel on
// the GPU (cuda_model.h).
//
// Memory is planned up front: the constructor sizes every buffer from the config and the batch
// shape (B rows of T text tokens) and allocates once; forward and backward allocate nothing
// beyond small per-call scratch inside the CPU kernels.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "config/config.h"
#include "model/activations.h"
#include "model/cpu_backend.h"
#include "model/dims.h"
#include "model/layer_plan.h"
#include "model/param_layout.h"
#include "parallel/communicator.h"

namespace hymba {

// Tensor parallelism (DESIGN.md §5): the model is rank `rank` of `size` ranks that each hold a
// share of every split tensor (TensorSplit) and exchange activations through `comm`, an in-order
// communicator over those ranks (Ordering::in_order; unused, and may be null, with one rank).
struct TensorParallel {
  int rank = 0, size = 1;
  Communicator* comm = nullptr;
  TensorParallelRank layout_rank() const { return {rank, size}; }
};

// The bytes of the buffers a model allocates (HymbaModelOn::memory), by role.
struct ModelMemory {
  int64_t weights = 0;  // master weights, their gradients, and the GEMMs' bf16 copy of the matrices
  int64_t saved = 0;    // activations kept from forward for backward
  int64_t scratch = 0;  // the rest of the activation arena: backward scratch, recomputed buffers,
                        // logits, alignment
  int64_t kernels = 0;  // the backend's own: kernel scratch, the batch's ids, cuBLAS's workspace
  int64_t total() const { return weights + saved + scratch + kernels; }
};

template <class Backend>
class HymbaModelOn {
 public:
  using F = typename Backend::Act;    // activations: float, double (CPU checks) or bf16 (GPU)
  using P = typename Backend::Param;  // parameters, gradients: F, or float where F is bf16
  using Stat = typename Backend::Stat;  // norm and attention statistics: like P
  template <class T>
  using Array = typename Backend::template Array<T>;

  // Plans and allocates parameters, gradients and activations for batches of `batch` rows of
  // `seq_len` text tokens. The config must be validated. data_parallel: the number of ZeRO-1
  // shards the layout's buckets must split into (build_param_layout). tp: this rank's share of
  // tensor parallelism; every rank of it gets the same batches and computes the same loss.
  // recompute: what backward recomputes instead of keeping (train.recompute); the gradients are
  // the same bits at every level.
  HymbaModelOn(const ModelConfig& config, int64_t batch, int64_t seq_len, int64_t data_parallel = 1,
               TensorParallel tp = {}, Recompute recompute = Recompute::none);
  // What the constructor with these arguments allocates, without allocating it: to check that a
  // run fits before starting it.
  static ModelMemory memory(const ModelConfig& config, int64_t batch, int64_t seq_len, int64_t data_parallel = 1,
                            TensorParallelRank tp = {}, Recompute recompute = Recompute::none);
  HymbaModelOn(const HymbaModelOn&) = delete;  // the views below point into this object's buffers
  HymbaModelOn& operator=(const HymbaModelOn&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const std::vector<LayerSpec>& layer_plan() const { return plan_; }
  const ParamLayout& layout() const { return layout_; }  // this tensor-parallel rank's tensors
  const TensorParallel& tensor_parallel() const { return tp_; }
  int64_t batch() const { return d_.B; }
  int64_t seq_len() const { return d_.T; }
  Backend& backend() { return ops_; }
  int64_t arena_bytes() const { return int64_t(arena_.size()); }  // the activation buffers

  Array<P> params;  // [layout().storage] master weights
  Array<P> grads;   // [layout().storage]; backward accumulates (+=)

  void init(uint64_t seed);
  // Call after anything writes params (an optimizer step, a checkpoint load): with bf16
  // activations the GEMMs read a bf16 copy of the matrices, which this refreshes.
  void params_updated();
  // Where F is not P, the GEMMs' copy of the matrices in F: elements [0, layout().matrices_end())
  // of the layout (the fp32-read tensors follow them and have no copy). cast_weights refreshes
  // elements [begin, begin + n) of it from params (nothing where F is P).
  static constexpr bool kComputeCopy = !std::is_same_v<F, P>;
  F* compute_weights() { return compute_weights_.data(); }
  void cast_weights(int64_t begin, int64_t n);
  void zero_grads();
  double grad_norm() { return std::sqrt(ops_.sum_of_squares(grads.data(), layout_.storage)); }

  // ids [B, T] (host memory). With targets [B, T] (kIgnoreIndex rows skipped) returns the summed
  // cross-entropy over counted targets; without, returns 0. logits() then holds the logits.
  double forward(const int32_t* ids, const int32_t* targets);

  // Called during backward with b as soon as no later work writes the gradients of
  // layout().buckets[b] (in the backend's order: on the GPU, after the kernels issued so far).
  using BucketDone = std::function<void(size_t b)>;

  // forward, then backward of (grad_scale · summed loss) into grads (+=). The logits buffer is
  // turned into dlogits in the same pass as the loss (fused softmax/cross-entropy).
  double forward_backward(const int32_t* ids, const int32_t* targets, double grad_scale,
                          const BucketDone& bucket_done = {});

  // [B, T, logits_stride()] in the backend's memory: this rank's vocabulary ids (vocab_range),
  // then padding columns up to vocab_rows_per_rank (model/dims.h), with one rank too.
  const F* logits() const { return a_.logits; }
  int64_t logits_stride() const { return d_.V; }
  // The logits over the whole vocabulary as floats in host memory [B, T, vocab_size] (evaluation,
  // generation). With tensor parallelism every rank calls it: the ranks' columns are gathered.
  const float* host_logits();
  const Activations<F, Stat>& activations() const { return a_; }

 private:
  double run_forward(const int32_t* ids, const int32_t* targets, double grad_scale,
                     bool want_grad);
  // A layer runs the branches its LayerSpec names (model.mixer); each branch reads and writes
  // its own columns of the in_proj output and of its gradient.
  // recomputing: for backward (train.recompute all), which needs nothing of the layer's output.
  void layer_forward(int64_t l, bool recomputing = false);
  // Parts of layer_forward that the recompute levels run again.
  void input_norm_forward(int64_t l);
  void fusion_forward(int64_t l);  // the fusion norm(s) and their average: out_proj's input
  void mlp_norm_forward(int64_t l);
  void mlp_hidden_forward(int64_t l);  // gate, up and SwiGLU: the down projection's input
  // Before layer l's backward: what the recompute level did not keep.
  void recompute_for_backward(int64_t l);
  void attention_heads_forward(int64_t l);
  void mamba_heads_forward(int64_t l);
  void layer_backward(int64_t l);
  void attention_heads_backward(int64_t l);
  void mamba_heads_backward(int64_t l);
  cpu::ScanShape scan_shape() const { return scan_shape_of(d_); }  // every Mamba layer's scan
  static cpu::ScanShape scan_shape_of(const Dims& d) { return {d.B, d.S, d.E, d.N}; }  // this rank's channels
  // Places every activation buffer from `base` (nullptr: only sizes them); returns the arena's bytes.
  static int64_t place_arena(Activations<F, Stat>& a, const Dims& d, const std::vector<LayerSpec>& plan,
                             int64_t tp, Recompute recompute, void* base) {
    return place_activations(a, d, plan, tp, Backend::scan_state_count(scan_shape_of(d)), recompute, base);
  }
  cpu::ScanInputs<F, P> scan_inputs(int64_t l) const;  // layer l's scan operands
  double head_forward(const int32_t* targets, double grad_scale, bool want_grad);
  // Whether the logits hold columns other than the whole vocabulary (padding, other ranks' ids).
  bool vocab_padded() const { return tp_.size > 1 || d_.V != cfg_.vocab_size; }
  void head_backward();

  // Tensor parallelism. tp_sum: x [n] becomes the sum over the ranks (nothing with one rank).
  template <class T>
  void tp_sum(T* x, int64_t n) {
    if (tp_.size > 1) tp_.comm->all_reduce_sum(x, n);
  }
  // Before a row-parallel GEMM accumulates its partial product into dst (then tp_sum'd): dst = x
  // on rank 0 and zero on the others, so the sum over ranks is x + the whole product.
  void start_partial_sum(F* dst, const F* x, int64_t n);
  // RMSNorm over rows whose `dim` columns here are one rank's share of dim·tp (the fusion norms:
  // cpu/rmsnorm.h's split form around an all-reduce); the plain kernels with one rank. average:
  // y = (y + norm) · 0.5 (the second branch of a fusion).
  void split_norm_forward(F* y, int64_t ldy, Stat* rstd, const F* x, int64_t ldx, const P* w, int64_t rows,
                          int64_t dim, bool average = false);
  void split_norm_backward(F* dx, int64_t lddx, P* dw, const F* dy, int64_t lddy, const F* x, int64_t ldx,
                           const P* w, const Stat* rstd, int64_t rows, int64_t dim);
  ModelConfig cfg_;
  TensorParallel tp_;
  Recompute recompute_;
  cpu::VocabRange vocab_;        // the vocabulary ids this rank's embedding rows hold
  std::vector<LayerSpec> plan_;
  ParamLayout layout_;
  Dims d_;                       // sizes for this batch shape and tensor-parallel rank
  Backend ops_;
  Array<float> inv_freq_;        // [hd/2] RoPE frequencies
  ModelParams<P*> w_, g_;        // views into params / grads
  Array<F> compute_weights_;     // [layout().matrices_end()] the matrices in F, where F is not P
  ModelParams<F*> wc_;           // what the GEMMs (and the embedding lookup) read: views into
                                 // params, or compute_weights_ (null for the fp32-read tensors)

  Array<std::byte> arena_;       // every activation buffer, placed by place_activations
  Activations<F, Stat> a_;
  std::vector<int32_t> ids_;     // [B, T] the batch being processed (backward needs it)
  std::vector<float> logits_host_;  // host_logits() staging
  Array<F> logits_gathered_;     // [tp, B·T, V] every rank's logits (tensor parallelism; made
                                 // on the first host_logits call: evaluation only)
};

template <class F>
using HymbaModel = HymbaModelOn<CpuBackend<F>>;

extern template class HymbaModelOn<CpuBackend<float>>;
extern template class HymbaModelOn<CpuBackend<double>>;

}  // namespace hymba
