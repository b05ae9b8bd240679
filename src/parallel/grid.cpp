#include "parallel/grid.h"

#include "core/error.h"

namespace hymba {

namespace {

// The trainer has refused a parallel.tp that does not divide the job, naming the config file
// (check_parallel in trainer/trainer.cpp); here it is an invariant.
int checked_tp(const ProcessGroup& job, int tp) {
  HYMBA_ASSERT(tp >= 1 && job.size() % tp == 0);
  return tp;
}

}  // namespace

ParallelGrid::ParallelGrid(const ProcessGroup& job, int tp)
    : job_(job),
      tp_(checked_tp(job, tp)),
      tensor_(job.split(/*color=*/job.rank() / tp_, /*key=*/job.rank() % tp_)),
      data_(job.split(/*color=*/job.rank() % tp_, /*key=*/job.rank() / tp_)) {}

}  // namespace hymba
