// The training memory plan on the GPU (trainer/memory_plan.h): it counts what the model and the
// optimizer allocate, measured as the device memory they take, and a run that cannot fit is
// refused before it allocates anything. Skipped without a GPU. These tests run alone
// (RUN_SERIAL, tests/CMakeLists.txt): cudaMemGetInfo sees every process's allocations.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>
#include <string>

#include "config/config.h"
#include "core/device.h"
#include "gpu_test.h"
#include "test_util.h"
#include "trainer/memory_plan.h"
#include "trainer/trainer.h"
#ifdef HYMBA_HAVE_CUDA
#include "model/cuda_model.h"
#include "optim/cuda_adamw.h"
#endif

namespace hymba::test {
namespace {

const std::string k125m = std::string(HYMBA_SOURCE_DIR) + "/configs/hymba-125m.yaml";

#ifdef HYMBA_HAVE_CUDA
// Device bytes that building Model and its AdamW for cfg takes, against the plan. cudaMalloc
// rounds each allocation up to 2 MiB pages, and cuBLASLt's handle keeps a little of its own:
// 48 MiB covers both for the dozen allocations; an omitted buffer is hundreds of MiB here.
template <class Model>
void expect_plan_matches_allocation(const Config& cfg) {
  const TrainingMemory plan = plan_training_memory<Model>(cfg, 1, false);
  HYMBA_CUDA_CHECK(cudaDeviceSynchronize());
  const double before = gpu_memory().used;
  double after = 0;
  {
    const TrainConfig& tc = cfg.train;
    Model model(cfg.model, tc.batch_size, tc.seq_len, 1, {}, tc.recompute);
    CudaAdamW opt(model.layout(), cfg.optim);
    HYMBA_CUDA_CHECK(cudaDeviceSynchronize());
    after = gpu_memory().used;
  }
  const double taken = after - before, planned = double(plan.total());
  EXPECT_GT(planned, 1e9) << "a plan this small would not show an omission";
  EXPECT_GE(taken, planned - 1.0 * (1 << 20)) << format_training_memory(plan);
  EXPECT_LE(taken, planned + 48.0 * (1 << 20)) << format_training_memory(plan);
}
#endif

TEST(GpuMemoryPlan, CountsWhatTheModelAndItsOptimizerAllocate) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const char* recompute : {"none", "all"}) {
    SCOPED_TRACE(recompute);
    const Config cfg = load_config(k125m, {"train.batch_size=2", "train.seq_len=1024",
                                           std::string("train.recompute=") + recompute});
    expect_plan_matches_allocation<CudaBf16HymbaModel>(cfg);
    expect_plan_matches_allocation<CudaHymbaModel>(cfg);
  }
#endif
}

// 4096 rows of 125m need terabytes: the error names the config and what to change, and comes
// before the run directory is touched.
TEST(GpuMemoryPlan, ARunThatCannotFitIsRefusedNamingWhatToChange) {
  HYMBA_REQUIRE_GPU();
  const std::string dir = ::testing::TempDir() + "hymba-memory-plan-refused";
  const Config cfg = load_config(k125m, {"train.device=cuda", "train.precision=bf16", "train.batch_size=4096",
                                         "run.dir=" + dir});
  std::ostringstream log;
  expect_error([&] { train(cfg, log); },
               {"hymba-125m.yaml: training needs ", ") of GPU memory per rank, but ", "GiB are free", "train.batch_size",
                "train.recompute"});
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace hymba::test
