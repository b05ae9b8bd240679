// main() of the tests/test_mpi_* executables: joins the MPI job, then runs the tests on every
// rank. Rank 0 prints GoogleTest's usual report; the other ranks print only their failures (each
// line names the rank), so the output of a 4-rank job stays readable. Every rank exits with
// failure when any rank had a failing test.
#include <gtest/gtest.h>

#include <cstdio>

#include "core/device.h"
#include "parallel/process_group.h"
#include "tests/mpi_test.h"

#ifdef HYMBA_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "core/cuda_check.h"
#endif

namespace hymba::test {
namespace {

ProcessGroup* the_group = nullptr;

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}

  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    const char* file = result.file_name() ? result.file_name() : "?";
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_, file, result.line_number(),
                 result.message());
    std::fflush(stderr);
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (!info.result()->Failed()) return;
    std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
    std::fflush(stderr);
  }

 private:
  int rank_;
};

}  // namespace

ProcessGroup& test_group() { return *the_group; }

bool each_rank_has_a_gpu(const ProcessGroup& group) {
  const int gpus = cuda_device_count();
  double usable = gpus > 0 && group.local_size() <= gpus ? 1 : 0;
  group.all_reduce_sum(&usable, 1);
  if (usable < group.size()) return false;
#ifdef HYMBA_HAVE_CUDA
  HYMBA_CUDA_CHECK(cudaSetDevice(group.local_rank()));
#endif
  return true;
}

}  // namespace hymba::test

int main(int argc, char** argv) {
  // Before GoogleTest parses the command line: MPI_Init_thread may take its own arguments out.
  hymba::ProcessGroup group = hymba::ProcessGroup::from_environment(&argc, &argv);
  hymba::test::the_group = &group;
  ::testing::InitGoogleTest(&argc, argv);
  if (group.rank() > 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new hymba::test::FailurePrinter(group.rank()));
  }
  const int status = RUN_ALL_TESTS();
  // Rank 0's report shows only its own results: the job fails as a whole when any rank failed.
  double failed = status != 0 ? 1 : 0;
  group.all_reduce_sum(&failed, 1);
  if (failed > 0 && status == 0 && group.rank() == 0) {
    std::fprintf(stderr, "FAILED on %g other rank(s): see the [rank R] lines\n", failed);
  }
  return failed > 0 ? 1 : 0;
}
