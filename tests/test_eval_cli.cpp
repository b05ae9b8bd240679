// hymba-eval end to end: train the tiny model briefly, then score its checkpoint (validation,
// recall, generation) on the CPU and, where there is a GPU, on the GPU, which must agree; and the
// device choice of hymba-eval and hymba-train refuses what it cannot do, with the option named.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <regex>
#include <string>

#include "core/device.h"
#include "tests/test_util.h"

namespace hymba::test {
namespace {

const std::string kBin = std::string(HYMBA_BINARY_DIR) + "/bin/";
const std::string kTiny = std::string(HYMBA_SOURCE_DIR) + "/configs/tiny.yaml";
const std::string kCache = "data.cache_dir=" + test_cache_dir();

// The number after `key` in `text` (e.g. "loss " in "validation: loss 5.1234 ..."), or NaN.
double number_after(const std::string& text, const std::string& key) {
  const size_t at = text.find(key);
  return at == std::string::npos ? std::nan("") : std::strtod(text.c_str() + at + key.size(), nullptr);
}

class EvalCli : public TempDirTest {
 protected:
  // Trains 3 steps on the CPU and returns the checkpoint; `val` receives the validation shards.
  std::string trained_checkpoint(std::string& val) {
    const auto [status, out] = run_command(kBin + "hymba-train " + kTiny + " train.steps=3 train.device=cpu " +
                                           "checkpoint.every=3 run.dir=" + path("run") + " " + kCache);
    EXPECT_EQ(status, 0) << out;
    std::smatch m;
    EXPECT_TRUE(std::regex_search(out, m, std::regex("data: val .* shards \\(([^)]*)\\)"))) << out;
    val = m.size() > 1 ? m[1].str() : "";
    return path("run/checkpoint-00000003.h5");
  }
};

TEST_F(EvalCli, ScoresACheckpointOnEveryDeviceAlike) {
  std::string val;
  const std::string ck = trained_checkpoint(val);
  const std::string what = " --val " + val + " --batches 2 --recall --recall-batches 1 --generate 'It is' --max-new 4 --temperature 0";
  const auto [status, cpu] = run_command(kBin + "hymba-eval " + ck + what + " --device cpu");
  ASSERT_EQ(status, 0) << cpu;
  const double cpu_loss = number_after(cpu, "validation: loss ");
  EXPECT_GT(cpu_loss, 3.0) << cpu;
  EXPECT_LT(cpu_loss, 7.0) << cpu;
  EXPECT_NE(cpu.find("recall: length"), std::string::npos) << cpu;
  EXPECT_NE(cpu.find("generate: temperature 0"), std::string::npos) << cpu;
  if (cuda_device_count() == 0) {
    const auto [bad, out] = run_command(kBin + "hymba-eval " + ck + what + " --device cuda");
    EXPECT_EQ(bad, 1) << out;
    EXPECT_NE(out.find("--device: cuda:"), std::string::npos) << out;
    return;
  }
  const auto [gpu_status, gpu] = run_command(kBin + "hymba-eval " + ck + what + " --device cuda");
  ASSERT_EQ(gpu_status, 0) << gpu;
  EXPECT_NEAR(number_after(gpu, "validation: loss "), cpu_loss, 1e-4 * cpu_loss) << gpu;
  EXPECT_NEAR(number_after(gpu, "accuracy "), number_after(cpu, "accuracy "), 1e-9) << gpu;
}

TEST_F(EvalCli, ABadDeviceIsAUsageError) {
  const auto [status, out] = run_command(kBin + "hymba-eval x.h5 --val y --device tpu");
  EXPECT_EQ(status, 2) << out;
  EXPECT_NE(out.find("--device"), std::string::npos) << out;
}

TEST(TrainerDevice, CudaOrBf16WithoutAGpuIsRefusedWithTheKeyNamed) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present: both settings are valid here";
  auto [status, out] = run_command(kBin + "hymba-train " + kTiny + " train.device=cuda train.steps=1 run.dir=/tmp/x");
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("train.device: cuda:"), std::string::npos) << out;
  std::tie(status, out) = run_command(kBin + "hymba-train " + kTiny + " train.precision=bf16 train.steps=1 run.dir=/tmp/x");
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("train.precision: bf16 needs the GPU"), std::string::npos) << out;
}

}  // namespace
}  // namespace hymba::test
