// `mpirun -np N hymba-train ...` end to end on the CPU: a 4-rank run's checkpoint resumes on 2
// ranks and ends where one process ends; a rank that fails ends the whole job with its error.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/json.h"
#include "tests/test_util.h"

namespace hymba::test {
namespace {

namespace fs = std::filesystem;

const std::string kTrain = std::string(HYMBA_BINARY_DIR) + "/bin/hymba-train " + HYMBA_SOURCE_DIR +
                           "/configs/tiny.yaml train.device=cpu train.batch_size=8 train.log_every=1 train.threads=1 "
                           "checkpoint.every=4 data.cache_dir=" + test_cache_dir();
// CI runs as root on 2 cores.
const std::string kMpirun =
    "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1 mpirun --oversubscribe -np ";

std::vector<double> losses(const fs::path& run_dir) {
  std::vector<double> out;
  std::ifstream f(run_dir / "metrics.jsonl");
  int64_t n = 0;
  for (std::string line; std::getline(f, line);) {
    const JsonValue v = parse_json(line, JsonSource{"metrics.jsonl", ++n, 0});
    if (const JsonValue* loss = v.find("loss")) out.push_back(loss->as_number());
  }
  return out;
}

class ParallelCli : public TempDirTest {};

TEST_F(ParallelCli, FourRanksCheckpointResumesOnTwo) {
  const std::string parallel = "run.dir=" + path("parallel");
  auto [rc, out] = run_command(kMpirun + "4 " + kTrain + " train.steps=4 " + parallel);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("parallel: 4 ranks = 4 data-parallel replicas (ZeRO-1) x 1 tensor-parallel ranks, 2 rows per replica"), std::string::npos) << out;
  std::tie(rc, out) = run_command(kMpirun + "2 " + kTrain + " train.steps=8 train.resume=auto " + parallel);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("continuing after step 4"), std::string::npos) << out;
  std::tie(rc, out) = run_command(kTrain + " train.steps=8 run.dir=" + path("single"));
  ASSERT_EQ(rc, 0) << out;
  const std::vector<double> want = losses(path("single")), got = losses(path("parallel"));
  ASSERT_EQ(want.size(), 8u);
  ASSERT_EQ(got.size(), 8u);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 2e-5 * want[i]) << "step " << i + 1;
}

// Only rank 0 looks at run.dir, so only it fails here; the job must still end, with its message.
TEST_F(ParallelCli, ARankThatFailsEndsTheJob) {
  write("taken/metrics.jsonl", "{}\n");
  const auto [rc, out] = run_command(kMpirun + "2 " + kTrain + " train.steps=2 parallel.timeout_s=60 run.dir=" +
                                     path("taken"));
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("error: rank 0 of 2"), std::string::npos) << out;
  EXPECT_NE(out.find("already holds a run"), std::string::npos) << out;
}

}  // namespace
}  // namespace hymba::test
