// The training loop and the hymba-train command line, end to end on the tiny config.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "config/config.h"
#include "core/error.h"
#include "tests/test_util.h"
#include "trainer/memory_plan.h"
#include "trainer/trainer.h"

namespace hymba::test {
namespace {

namespace fs = std::filesystem;

const std::string kTiny = std::string(HYMBA_SOURCE_DIR) + "/configs/tiny.yaml";

// Prepared corpora are shared by every test here (and by concurrent test processes: preparation
// holds a file lock), outside the source tree.
const std::string kCache = "data.cache_dir=" + test_cache_dir();

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("hymba_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(line);
  return lines;
}

const std::string kTrainBinary = std::string(HYMBA_BINARY_DIR) + "/bin/hymba-train";

TEST(Trainer, TinyModelLearnsTheBundledCorpus) {
  const fs::path dir = fresh_dir("learns");
  const Config cfg = load_config(kTiny, {"train.steps=150", "train.log_every=50", "run.dir=" + dir.string(), kCache});
  std::ostringstream log;
  const TrainSummary s = train(cfg, log);
  // The 1024-token vocabulary starts at ln 1024 = 6.93 nats; 150 steps of the tiny model reach
  // about 5.05 (validation 5.2).
  EXPECT_GT(s.first_loss, 6.5) << log.str();
  EXPECT_LT(s.final_loss, 5.6) << log.str();
  EXPECT_LT(s.val_loss, 5.7) << log.str();
  // One JSON line per logged step (1, 50, 100, 150) plus the validation line.
  const auto lines = read_lines(dir / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 5u) << log.str();
  for (const char* key : {"\"step\": 150", "\"loss\":", "\"lr\":", "\"grad_norm\":", "\"tokens_per_sec\":"}) {
    EXPECT_NE(lines[3].find(key), std::string::npos) << lines[3];
  }
  EXPECT_NE(lines[4].find("\"val_loss\":"), std::string::npos);
  // The run folder keeps the exact configuration that ran, loadable as a config.
  const Config again = load_config((dir / "config.yaml").string());
  EXPECT_EQ(again.resolved, cfg.resolved);
  fs::remove_all(dir);
}

TEST(Trainer, SameSeedGivesBitIdenticalLosses) {
  std::vector<std::string> runs;
  for (int i = 0; i < 2; ++i) {
    const fs::path dir = fresh_dir("repeat" + std::to_string(i));
    const Config cfg = load_config(kTiny, {"train.steps=4", "train.log_every=1", "run.dir=" + dir.string(), kCache});
    std::ostringstream log;
    train(cfg, log);
    std::string losses;
    for (const std::string& line : read_lines(dir / "metrics.jsonl")) losses += line.substr(0, line.find("\"lr\"")) + "\n";
    runs.push_back(losses);
    fs::remove_all(dir);
  }
  EXPECT_EQ(runs[0], runs[1]);
}

// Row r of training batch i is row i·B + r of one seeded stream, so 2 micro-batches of 4 rows
// cover exactly the rows of 1 batch of 8: the two runs must agree up to float summation order.
TEST(Trainer, GradientAccumulationEqualsOneBigBatch) {
  std::vector<std::vector<double>> losses;
  for (const char* shape : {"train.grad_accum=1 train.batch_size=8", "train.grad_accum=2 train.batch_size=4"}) {
    const fs::path dir = fresh_dir("accum");
    std::vector<std::string> overrides = {"train.steps=3", "train.log_every=1", "run.dir=" + dir.string(), kCache};
    std::istringstream words(shape);
    for (std::string w; words >> w;) overrides.push_back(w);
    std::ostringstream log;
    train(load_config(kTiny, overrides), log);
    losses.emplace_back();
    for (const std::string& line : read_lines(dir / "metrics.jsonl")) {
      const size_t at = line.find("\"loss\": ");
      if (at != std::string::npos) losses.back().push_back(std::stod(line.substr(at + 8)));
    }
    fs::remove_all(dir);
  }
  ASSERT_EQ(losses[0].size(), 3u);
  ASSERT_EQ(losses[1].size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(losses[0][i], losses[1][i], 1e-5 * losses[0][i]) << "step " << i + 1;
  EXPECT_NE(losses[0][0], losses[0][2]);  // the steps did update the model
}

TEST(Trainer, RefusesToOverwriteAFinishedRun) {
  const fs::path dir = fresh_dir("refuse");
  fs::create_directories(dir);
  std::ofstream(dir / "metrics.jsonl") << "{\"step\": 1, \"loss\": 3.0}\n";
  const Config cfg = load_config(kTiny, {"train.steps=1", "run.dir=" + dir.string(), kCache});
  std::ostringstream log;
  try {
    train(cfg, log);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already holds a run"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_lines(dir / "metrics.jsonl").size(), 1u);  // untouched
  fs::remove_all(dir);
}

TEST(Trainer, ADivergedRunStopsWithAClearError) {
  // A learning rate of 1e30 turns every weight into ±1e30 after the first update, so the second
  // step's loss overflows.
  const fs::path dir = fresh_dir("diverge");
  const Config cfg = load_config(kTiny, {"train.steps=5", "optim.lr=1e30", "optim.min_lr=0", "optim.warmup_steps=0",
                                         "optim.grad_clip=0", "run.dir=" + dir.string(), kCache});
  std::ostringstream log;
  expect_error([&] { train(cfg, log); }, {"step 2: the training loss", "the run diverged"});
  fs::remove_all(dir);
}

// The log's memory line: one unit for the whole line, MiB below 1 GiB; the reduced gradients
// only where a communicator holds them.
TEST(TrainingMemory, FormatsTheLineInOneUnit) {
  constexpr int64_t MiB = int64_t(1) << 20, GiB = int64_t(1) << 30;
  TrainingMemory m;
  m.model = {3 * GiB, 10 * GiB, GiB, GiB / 2};
  m.optimizer = 2 * GiB;
  EXPECT_EQ(format_training_memory(m), "16.5 GiB (weights and gradients 3.0, optimizer 2.0, activations kept for "
                                       "backward 10.0, scratch 1.0, kernels 0.5)");
  m.model = {3 * MiB, 20 * MiB, 7 * MiB, 32 * MiB};
  m.optimizer = 2 * MiB;
  m.reduced_grads = MiB;
  EXPECT_EQ(format_training_memory(m), "65.0 MiB (weights and gradients 3.0, optimizer 2.0, reduced gradients 1.0, "
                                       "activations kept for backward 20.0, scratch 7.0, kernels 32.0)");
}

TEST(TrainerCli, InfoReportsTheOfficialParameterCount) {
  const auto [status, out] = run_command(kTrainBinary + " " + HYMBA_SOURCE_DIR + "/configs/hymba-1.5b.yaml --info");
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("parameters: 1522797824"), std::string::npos) << out;
  EXPECT_NE(out.find("activation memory per token"), std::string::npos) << out;
  EXPECT_NE(out.find("model FLOPs per token"), std::string::npos) << out;
  EXPECT_NE(out.find("training memory on "), std::string::npos) << out;
}

TEST(TrainerCli, BadInputGetsAClearErrorAndExitCode) {
  {
    const auto [status, out] = run_command(kTrainBinary + " " + kTiny + " model.hiden_size=3 --info");
    EXPECT_EQ(status, 1);
    EXPECT_NE(out.find("command line: model.hiden_size"), std::string::npos) << out;
  }
  {
    const auto [status, out] = run_command(kTrainBinary + " /nonexistent/config.yaml");
    EXPECT_EQ(status, 1);
    EXPECT_NE(out.find("/nonexistent/config.yaml"), std::string::npos) << out;
  }
  {
    const auto [status, out] = run_command(kTrainBinary + " " + kTiny + " --bogus");
    EXPECT_EQ(status, 2);
    EXPECT_NE(out.find("unknown option --bogus"), std::string::npos) << out;
  }
  {
    const auto [status, out] = run_command(kTrainBinary + " " + kTiny + " data.train=/nonexistent/corpus.txt " + kCache +
                                   " run.dir=" + fresh_dir("nodata").string());
    EXPECT_EQ(status, 1);
    EXPECT_NE(out.find("/nonexistent/corpus.txt: no such file or folder"), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace hymba::test
