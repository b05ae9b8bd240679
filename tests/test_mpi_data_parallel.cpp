// Data parallelism (ZeRO-1) on the CPU under mpirun: every rank of the job runs these tests
// together. A run split over the job's ranks must equal one process training on the same global
// batch, step by step and in its final weights, up to float summation order; and a checkpoint
// resumes under another number of ranks.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "tests/mpi_test.h"
#include "tests/mpi_training.h"
#include "tests/test_util.h"
#include "trainer/trainer.h"

namespace hymba::test {
namespace {

using namespace mpi_training;

// The single-process reference: the same global batch on one rank.
class DataParallel : public JobTest {
 protected:
  Config reference(const fs::path& run_dir) const override { return tiny(run_dir); }
};

TEST_F(DataParallel, EqualsOneProcessOnTheSameGlobalBatch) {
  std::ostringstream log;
  const Config cfg = tiny(dir_ / "parallel");
  const TrainSummary s = train(cfg, *group_, log);
  EXPECT_EQ(s.steps, 10);
  if (rank() == 0) {
    EXPECT_NE(log.str().find("parallel: " + std::to_string(group_->size()) + " ranks"), std::string::npos) << log.str();
    expect_same_run(cfg, dir_ / "single", dir_ / "parallel");
  } else {
    EXPECT_EQ(log.str(), "");  // only rank 0 prints
  }
}

// Saved by all ranks at step 5, resumed by one process; and the other way round. Both must end
// where the uninterrupted single-process run ends.
TEST_F(DataParallel, CheckpointResumesUnderAnotherRankCount) {
  std::ostringstream log;
  const Config half = tiny(dir_ / "many-to-one", {"train.steps=5"});
  train(half, *group_, log);
  if (rank() == 0) {
    train(tiny(dir_ / "many-to-one", {"train.resume=auto"}), log);
    expect_same_run(half, dir_ / "single", dir_ / "many-to-one");
    std::ostringstream first_half;
    train(tiny(dir_ / "one-to-many", {"train.steps=5"}), first_half);
  }
  train(tiny(dir_ / "one-to-many", {"train.resume=auto"}), *group_, log);
  if (rank() == 0) expect_same_run(half, dir_ / "single", dir_ / "one-to-many");
}

TEST_F(DataParallel, RefusesABatchThatDoesNotSplit) {
  std::ostringstream log;
  const int64_t rows = group_->size() * 2 + 1;
  expect_error([&] { train(tiny(dir_ / "odd", {"train.batch_size=" + std::to_string(rows)}), *group_, log); },
               {"train.batch_size: " + std::to_string(rows), "do not split evenly over"});
  const int64_t tp = group_->size() + 1;
  expect_error([&] { train(tiny(dir_ / "tp", {"parallel.tp=" + std::to_string(tp)}), *group_, log); },
               {"parallel.tp: " + std::to_string(tp), "does not divide model.num_attention_heads 4"});
  expect_error([&] { train(tiny(dir_ / "tp", {"parallel.tp=4", "model.num_attention_heads=8"}), *group_, log); },
               {"parallel.tp: 4", "does not divide model.num_key_value_heads 2"});
}

}  // namespace
}  // namespace hymba::test
