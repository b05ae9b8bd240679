#include "parallel/grid.h"

#include "core/error.h"

namespace hymba {

namespace {

int checked_tp(const ProcessGroup& job, int tp) {
  if (tp < 1 || job.size() % tp != 0) {
    fail("parallel.tp: ", tp, " does not divide the job's ", job.size(),
         " ranks (mpirun -np N with N = data-parallel replicas × parallel.tp)");
  }
  return tp;
}

}  // namespace

ParallelGrid::ParallelGrid(const ProcessGroup& job, int tp)
    : job_(job),
      tp_(checked_tp(job, tp)),
      tensor_(job.split(/*color=*/job.rank() / tp_, /*key=*/job.rank() % tp_)),
      data_(job.split(/*color=*/job.rank() % tp_, /*key=*/job.rank() / tp_)) {}

}  // namespace hymba
