// Data parallelism (ZeRO-1) on the CPU under mpirun: every rank of the job runs these tests
// together. A run split over the job's ranks must equal one process training on the same global
// batch, step by step and in its final weights, up to float summation order; a checkpoint
// resumes under another number of ranks; the weight all-gather reaches every rank.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "core/device.h"
#include "model/host_access.h"
#include "model/hymba_model.h"
#include "parallel/grid.h"
#include "tests/mpi_test.h"
#include "tests/mpi_training.h"
#include "tests/test_util.h"
#include "trainer/data_parallel.h"
#include "trainer/trainer.h"

#ifdef HYMBA_HAVE_CUDA
#include "model/cuda_model.h"
#endif

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

// After the optimizer each rank holds new weights in its own shard only; gather_params must give
// every rank every value: the fp32-read tensors in fp32, the matrices in the GEMMs' copy (bf16
// where the activations are bf16, which then travels instead of fp32). Each rank writes integers
// (exact in bf16) into its shard and a sentinel everywhere else.
template <class Model>
void expect_gather_fills_every_rank(ProcessGroup& job) {
  const ModelConfig c = load_config(kTiny).model;
  const ParallelGrid grid(job, 1);
  Model model(c, /*batch=*/1, /*seq_len=*/4, job.size());
  hymba::DataParallel<Model> dp(grid, model);
  const ParamLayout& layout = model.layout();
  const auto value = [](int64_t i) { return float(i % 255 - 127); };
  const float sentinel = 1e30f;
  std::vector<float> staging;
  float* params = host_buffer_to_overwrite(model.params, staging);
  std::fill(params, params + layout.storage, sentinel);
  commit_host_buffer(model.params, staging);
  model.params_updated();  // the GEMMs' copy: the sentinel too
  params = host_buffer(model.params, staging);
  for (const ShardPart& p : dp.shard().parts) {
    for (int64_t i = p.flat; i < p.flat + p.length; ++i) params[i] = value(i);
  }
  commit_host_buffer(model.params, staging);

  dp.gather_params();

  const ParamRange fp32 = layout.buckets[layout.fp32_bucket];
  params = host_buffer(model.params, staging);
  for (int64_t i = fp32.begin; i < fp32.end; ++i) ASSERT_EQ(params[i], value(i)) << "fp32-read element " << i;
  std::vector<float> copy_staging;
  const float* matrices = Model::kComputeCopy
                              ? model.backend().host_floats(model.compute_weights(), layout.matrices_end(), copy_staging)
                              : params;
  for (int64_t i = 0; i < layout.matrices_end(); ++i) ASSERT_EQ(matrices[i], value(i)) << "matrix element " << i;
}

TEST(DataParallelGather, GivesEveryRankEveryWeight) {
  expect_gather_fills_every_rank<HymbaModel<float>>(test_group());
}

#ifdef HYMBA_HAVE_CUDA
TEST(DataParallelGather, GivesEveryGpuEveryWeightTheMatricesInBf16) {
  if (!each_rank_has_a_gpu(test_group())) GTEST_SKIP() << "needs a GPU per rank (" << cuda_device_count() << " here)";
  expect_gather_fills_every_rank<CudaHymbaModel>(test_group());
  expect_gather_fills_every_rank<CudaBf16HymbaModel>(test_group());
}
#endif

}  // namespace
}  // namespace hymba::test
