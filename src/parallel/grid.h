// The ranks of a job as a grid: data-parallel replicas × tensor-parallel ranks (DESIGN.md §5).
// Job rank = replica · tp + tensor rank, so the tensor-parallel ranks of a replica are
// consecutive: under mpirun's default by-slot mapping they share a host, where the per-layer
// activation traffic of tensor parallelism is fastest.
#pragma once

#include "parallel/process_group.h"

namespace hymba {

class ParallelGrid {
 public:
  // Every rank of `job` calls it; tp must divide the job's size (the trainer checks parallel.tp
  // against it first, with a message naming the config file).
  ParallelGrid(const ProcessGroup& job, int tp);
  ParallelGrid(const ParallelGrid&) = delete;
  ParallelGrid& operator=(const ParallelGrid&) = delete;

  const ProcessGroup& job() const { return job_; }
  // This replica's tensor-parallel ranks (they hold the shares of one model and see the same batches).
  const ProcessGroup& tensor() const { return tensor_; }
  // The ranks holding the same tensor share, one per replica (ZeRO-1 shards and batches split over them).
  const ProcessGroup& data() const { return data_; }

 private:
  const ProcessGroup& job_;
  int tp_;  // checked before the groups below are split by it
  ProcessGroup tensor_, data_;
};

}  // namespace hymba
