// ZeRO-1 data parallelism for the training step (parallel/param_shard.h), over the data-parallel
// ranks of a ParallelGrid (those holding the same tensor-parallel share of the model):
//   - during the last micro-batch's backward, each bucket's gradient is reduce-scattered as soon as
//     backward has completed it (on the GPU on a side stream, overlapping the rest of backward);
//   - each rank keeps the summed gradient of its shard, compact, and its AdamW moments;
//   - after the update, the weights are all-gathered bucket by bucket (the matrices as the GEMMs'
//     bf16 copy where there is one).
// The loss and the gradient norm's sum of squares are added across ranks on the host.
//
// A single process (not launched by mpirun) has no communicator: its shard is the whole buffer,
// the shard's gradients are model.grads itself, and nothing is copied. Launched by mpirun, even
// with one rank, the collectives run (MPI for the CPU model, NCCL for the GPU model).
#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <type_traits>
#include <vector>

#include "model/hymba_model.h"
#include "parallel/communicator.h"
#include "parallel/grid.h"
#include "parallel/param_shard.h"
#include "parallel/process_group.h"

namespace hymba {

template <class Model>
class DataParallel {
 public:
  using P = typename Model::P;
  static constexpr bool kHostBuffers = std::is_same_v<typename Model::template Array<P>, std::vector<P>>;

  DataParallel(const ParallelGrid& grid, Model& model)
      : grid_(grid),
        model_(model),
        shard_(shard_params(model.layout(), grid.data().rank(), grid.data().size())),
        replicated_(replicated_ranges(model.layout(), shard_)) {
    if (!grid.job().uses_mpi()) return;
    comm_ = make_communicator(grid.data(), kHostBuffers, Ordering::overlapped);
    shard_grads_ = typename Model::template Array<P>(shard_.length);
  }

  const ParamShard& shard() const { return shard_; }

  // For model.forward_backward of the step's last micro-batch: reduce-scatters each bucket as
  // backward completes it. Empty (nothing to do) for a single process.
  typename Model::BucketDone reduce_when_done() {
    if (!comm_) return {};
    return [this](size_t b) {
      const ParamRange& bucket = model_.layout().buckets[b];
      const ShardPart& part = shard_.parts[b];
      comm_->reduce_scatter_sum(model_.grads.data() + bucket.begin, shard_grads_.data() + part.compact,
                                part.length);
    };
  }

  // After the last backward: the summed gradients of this rank's shard [shard.length], compact.
  P* shard_grads() {
    if (!comm_) return model_.grads.data();
    comm_->wait();
    return shard_grads_.data();
  }

  // sqrt(Σ g²) over every rank's shard: the global gradient norm. A replicated tensor (a norm
  // weight every tensor-parallel rank holds whole, with the same gradient) counts once: the
  // tensor-parallel ranks other than 0 leave it out.
  double grad_norm() {
    const P* g = shard_grads();
    double sum_sq = model_.backend().sum_of_squares(g, shard_.length);
    if (grid_.tensor().rank() != 0) {
      for (const ParamRange& r : replicated_) sum_sq -= model_.backend().sum_of_squares(g + r.begin, r.size());
    }
    grid_.job().all_reduce_sum(&sum_sq, 1);
    return std::sqrt(std::max(sum_sq, 0.0));
  }

  // x summed over the data-parallel ranks (a loss: every tensor-parallel rank has the same).
  double sum_over_replicas(double x) const {
    grid_.data().all_reduce_sum(&x, 1);
    return x;
  }

  // After the optimizer updated this rank's shard of model.params: every rank gets every shard.
  // Where the GEMMs read a bf16 copy of the matrices, the matrix buckets travel as that copy (half
  // the bytes of fp32): each rank casts its own parts (unless copy_written: the optimizer wrote
  // them as it updated the weights), then gathers the others'. The fp32 master weights of the
  // matrices are then current in this rank's parts only, which is all the optimizer and
  // checkpoints read. The fp32-read bucket (norms, SSM parameters...) travels in fp32.
  void gather_params(bool copy_written = false) {
    if (!comm_) {
      if (!copy_written) model_.params_updated();
      return;
    }
    const ParamLayout& layout = model_.layout();
    for (size_t b = 0; b < shard_.parts.size(); ++b) {
      const ParamRange& bucket = layout.buckets[b];
      const ShardPart& part = shard_.parts[b];
      if (Model::kComputeCopy && b != layout.fp32_bucket) {
        if (!copy_written) model_.cast_weights(part.flat, part.length);
        comm_->all_gather_in_place(model_.compute_weights() + bucket.begin, part.length);
      } else {
        comm_->all_gather_in_place(model_.params.data() + bucket.begin, part.length);
      }
    }
    comm_->wait();
  }

 private:
  // The compact ranges of this shard that hold replicated tensors (none with one tensor rank):
  // runs of them with no split tensor between (only zero padding), so one per part of the
  // layout's replicated region.
  static std::vector<ParamRange> replicated_ranges(const ParamLayout& layout, const ParamShard& shard) {
    std::vector<ParamRange> out;
    if (layout.tp.size == 1) return out;
    bool extend = false;  // the last segment was replicated: the next one may join its range
    for (const ShardSegment& s : shard_segments(layout, shard)) {
      const bool replicated = layout.tensors[s.tensor].split.dim < 0;
      if (replicated && extend) out.back().end = s.compact + s.length;
      else if (replicated) out.push_back({s.compact, s.compact + s.length});
      extend = replicated;
    }
    return out;
  }

  const ParallelGrid& grid_;
  Model& model_;
  ParamShard shard_;
  std::vector<ParamRange> replicated_;
  std::unique_ptr<Communicator> comm_;          // null for a single process
  typename Model::template Array<P> shard_grads_;  // [shard.length] with a communicator
};

}  // namespace hymba
