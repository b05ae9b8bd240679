// ZeRO-1 data parallelism for the training step (parallel/param_shard.h):
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

#include <cmath>
#include <memory>
#include <type_traits>
#include <vector>

#include "model/hymba_model.h"
#include "parallel/communicator.h"
#include "parallel/param_shard.h"
#include "parallel/process_group.h"

namespace hymba {

template <class Model>
class DataParallel {
 public:
  using P = typename Model::P;
  static constexpr bool kHostBuffers = std::is_same_v<typename Model::template Array<P>, std::vector<P>>;

  DataParallel(const ProcessGroup& group, Model& model)
      : group_(group), model_(model), shard_(shard_params(model.layout(), group.rank(), group.size())) {
    if (!group.uses_mpi()) return;
    if constexpr (kHostBuffers) {
      comm_ = make_mpi_communicator(group);
    } else {
#ifdef HYMBA_HAVE_CUDA
      comm_ = make_nccl_communicator(group, nullptr);  // the model's kernels run on the default stream
#endif
    }
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

  // sqrt(Σ g²) over every rank's shard: the global gradient norm.
  double grad_norm() {
    double sum_sq = model_.backend().sum_of_squares(shard_grads(), shard_.length);
    group_.all_reduce_sum(&sum_sq, 1);
    return std::sqrt(sum_sq);
  }

  double sum_over_ranks(double x) const {
    group_.all_reduce_sum(&x, 1);
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
  const ProcessGroup& group_;
  Model& model_;
  ParamShard shard_;
  std::unique_ptr<Communicator> comm_;          // null for a single process
  typename Model::template Array<P> shard_grads_;  // [shard.length] with a communicator
};

}  // namespace hymba
