// Shared by the tests/test_mpi_* files that train: the tiny run they compare, and the comparison
// of a parallel run with the single-process run (losses, gradient norms, validation loss and the
// final checkpoint's weights and moments).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/json.h"
#include "io/checkpoint.h"
#include "model/layer_plan.h"
#include "model/param_layout.h"
#include "tests/mpi_test.h"
#include "tests/test_util.h"
#include "trainer/trainer.h"

namespace hymba::test::mpi_training {

namespace fs = std::filesystem;

inline const std::string kTiny = std::string(HYMBA_SOURCE_DIR) + "/configs/tiny.yaml";

// One folder for the whole job (rank 0's process id, shared with every rank).
inline fs::path job_dir(const std::string& name) {
  int64_t pid = ::getpid();
  test_group().broadcast(&pid, sizeof pid, 0);
  return fs::temp_directory_path() / ("hymba_mpi_" + name + "_" + std::to_string(pid));
}

// The tiny model on 8-row micro-batches (2 per step), 10 steps, a checkpoint at 5 and 10,
// validation at the end; on the CPU, one thread per rank (the ranks share CI's cores).
inline Config tiny(const fs::path& run_dir, std::vector<std::string> more = {}) {
  std::vector<std::string> o = {"train.steps=10",         "train.batch_size=8", "train.grad_accum=2",
                                "train.log_every=1",      "train.threads=1",    "train.device=cpu",    "checkpoint.every=5",
                                "checkpoint.keep=5",      "eval.batches=2",     "run.dir=" + run_dir.string(),
                                "data.cache_dir=" + test_cache_dir()};
  o.insert(o.end(), more.begin(), more.end());
  return load_config(kTiny, o);
}

struct Metrics {
  std::vector<double> loss, grad_norm;
  double val_loss = -1;
};

inline Metrics read_metrics(const fs::path& run_dir) {
  Metrics m;
  std::ifstream f(run_dir / "metrics.jsonl");
  int64_t n = 0;
  for (std::string line; std::getline(f, line);) {
    const JsonValue v = parse_json(line, JsonSource{(run_dir / "metrics.jsonl").string(), ++n, 0});
    if (const JsonValue* loss = v.find("loss")) {
      m.loss.push_back(loss->as_number());
      m.grad_norm.push_back(v.find("grad_norm")->as_number());
    }
    if (const JsonValue* val = v.find("val_loss")) m.val_loss = val->as_number();
  }
  return m;
}

// The weights of a checkpoint, as one buffer with the single-process layout.
inline std::vector<float> weights(const Config& cfg, const fs::path& checkpoint) {
  const ParamLayout layout = build_param_layout(cfg.model, plan_layers(cfg.model));
  std::vector<float> p(size_t(layout.storage)), m(p.size()), v(p.size());
  load_checkpoint(checkpoint.string(), layout, p.data(), m.data(), v.data());
  p.insert(p.end(), m.begin(), m.end());  // the moments must agree too
  p.insert(p.end(), v.begin(), v.end());
  return p;
}

// Float summation order is all that differs: data-parallel ranks add their rows' gradients, and
// tensor-parallel ranks their partial products, in another order than one process. A wrong row
// split, a lost shard or a missing all-reduce moves losses by 1e-2 and more.
inline void expect_same_run(const Config& cfg, const fs::path& want, const fs::path& got) {
  const Metrics a = read_metrics(want), b = read_metrics(got);
  ASSERT_EQ(a.loss.size(), 10u);
  ASSERT_EQ(b.loss.size(), a.loss.size());
  for (size_t i = 0; i < a.loss.size(); ++i) {
    EXPECT_NEAR(b.loss[i], a.loss[i], 2e-5 * a.loss[i]) << "step " << i + 1;
    EXPECT_NEAR(b.grad_norm[i], a.grad_norm[i], 1e-4 * a.grad_norm[i]) << "step " << i + 1;
  }
  EXPECT_NEAR(b.val_loss, a.val_loss, 2e-5 * a.val_loss);
  const std::vector<float> wa = weights(cfg, want / "checkpoint-00000010.h5");
  const std::vector<float> wb = weights(cfg, got / "checkpoint-00000010.h5");
  double worst = 0, scale = 0;
  for (size_t i = 0; i < wa.size(); ++i) {
    worst = std::max(worst, std::abs(double(wa[i]) - double(wb[i])));
    scale = std::max(scale, std::abs(double(wa[i])));
  }
  EXPECT_LT(worst, 1e-4 * scale) << "largest weight/moment difference " << worst << " of " << scale;
}

// A test of the whole job: a folder every rank shares, holding the single-process reference run
// (made by rank 0 from reference(), the config the parallel runs are compared with), removed
// afterwards.
class JobTest : public ::testing::Test {
 protected:
  virtual Config reference(const fs::path& run_dir) const = 0;
  void SetUp() override {
    group_ = &test_group();
    dir_ = job_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    if (rank() == 0) {
      fs::remove_all(dir_);
      std::ostringstream log;
      train(reference(dir_ / "single"), log);
    }
  }
  void TearDown() override {
    group_->barrier();
    if (rank() == 0) fs::remove_all(dir_);
  }
  int rank() const { return group_->rank(); }
  int size() const { return group_->size(); }

  ProcessGroup* group_ = nullptr;
  fs::path dir_;
};

}  // namespace hymba::test::mpi_training
