// ZeRO-1 data parallelism for the training step (parallel/param_shard.h), over the data-parallel
// ranks of a ParallelGrid (those holding the same tensor-parallel share of the model):
//   - during the last micro-batch's backward, each bucket's gradient is reduce-scattered as soon as
//     backward has completed it (on the GPU on a side stream, overlapping the rest of backward);
//   - each rank keeps the summed gradient of its shard, compact, and its AdamW moments;
//   - after the update, the master weights are all-gathered bucket by bucket.
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

  // After the optimizer updated this rank's shard of model.params: every rank gets every shard,
  // and the model refreshes what it derives from the weights.
  void gather_params() {
    if (comm_) {
      for (size_t b = 0; b < shard_.parts.size(); ++b) {
        comm_->all_gather_in_place(model_.params.data() + model_.layout().buckets[b].begin, shard_.parts[b].length);
      }
      comm_->wait();
    }
    model_.params_updated();
  }

 private:
  // The compact ranges of this shard that hold replicated tensors (none with one tensor rank).
  static std::vector<ParamRange> replicated_ranges(const ParamLayout& layout, const ParamShard& shard) {
    std::vector<ParamRange> out;
    if (layout.tp.size == 1) return out;
    for (const ShardSegment& s : shard_segments(layout, shard)) {
      if (layout.tensors[s.tensor].split.dim < 0) out.push_back({s.compact, s.compact + s.length});
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
