// Scaffolding for tests/test_mpi_* files. They run under mpirun with several ranks
// (tests/CMakeLists.txt), every rank running every test, so a test must call the group's
// collectives in the same order on every rank (a GTEST_SKIP decision included).
#pragma once

#include "parallel/process_group.h"

namespace hymba::test {

// The job's group, made from the environment by tests/mpi_test_main.cpp before the tests run.
// Not const: training takes the group to set its timeout.
ProcessGroup& test_group();

// Whether every rank of the group has a GPU of its own (the ranks of a host no more than its GPUs);
// the same answer on every rank, so that all of them skip a GPU test together. Where true, each
// rank has selected GPU local_rank().
bool each_rank_has_a_gpu(const ProcessGroup& group);

}  // namespace hymba::test
