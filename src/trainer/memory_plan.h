// What one rank of a training run allocates on its device, counted before anything is
// allocated: the trainer logs it and refuses a GPU run that cannot fit, and `hymba-train CONFIG
// --info` prints it.
#pragma once

#include <cstdint>
#include <string>

#include "config/config.h"
#include "model/hymba_model.h"
#include "model/layer_plan.h"
#include "model/param_layout.h"
#include "parallel/param_shard.h"

namespace hymba {

struct TrainingMemory {
  ModelMemory model;
  int64_t optimizer = 0;      // AdamW's two moments of this rank's shard
  int64_t reduced_grads = 0;  // with a communicator: this rank's shard of the summed gradients
  int64_t total() const { return model.total() + optimizer + reduced_grads; }
};

// Rank 0's buffers (the largest: it holds the padded end of the vocabulary under tensor
// parallelism) for cfg's batch split over `replicas` data-parallel replicas of
// cfg.parallel.tp ranks. communicates: the run goes through MPI (DataParallel's shard buffer).
template <class Model>
TrainingMemory plan_training_memory(const Config& cfg, int64_t replicas, bool communicates) {
  const TrainConfig& tc = cfg.train;
  const TensorParallelRank tp{0, int(cfg.parallel.tp)};
  const ParamLayout layout = build_param_layout(cfg.model, plan_layers(cfg.model), replicas, tp);
  const int64_t shard = shard_params(layout, 0, int(replicas)).length;
  const int64_t bytes = int64_t(sizeof(typename Model::P));
  TrainingMemory m;
  m.model = Model::memory(cfg.model, tc.batch_size / replicas, tc.seq_len, replicas, tp, tc.recompute);
  m.optimizer = 2 * shard * bytes;
  m.reduced_grads = communicates ? shard * bytes : 0;
  return m;
}

// "41.6 GiB (weights and gradients 8.5, optimizer 11.3, activations kept for backward 20.1, scratch 1.5, kernels 0.2)"
std::string format_training_memory(const TrainingMemory& m);

// The memory `hymba-train CONFIG --info` prints: the activations per token of one row, then the
// plan of one process, on the device train.device picks (the GPU model at train.precision where
// the build has CUDA and train.device is not cpu), in that model's own sizes.
std::string describe_training_memory(const Config& cfg);

// Fails, naming the config and what to change, when a GPU run's plan exceeds the free memory
// of the current GPU.
void check_gpu_memory_fits(const Config& cfg, const TrainingMemory& plan);

}  // namespace hymba
