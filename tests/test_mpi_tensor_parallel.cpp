// Tensor parallelism on the CPU under mpirun (every rank of the job runs these tests together):
// the tiny model split over tensor-parallel ranks, alone and inside data-parallel replicas, must
// train as one process does on the same global batch (losses, gradient norms, final weights and
// moments, up to float summation order), and a checkpoint resumes under another (replicas,
// tensor ranks) layout.
//
// The model here has 4 KV heads (so 4 tensor ranks divide them) and a vocabulary of 1025, which
// splits unevenly (2 ranks: 513 + 512 rows and one padding row; 4 ranks: 257 × 3 + 254), so the
// padding rows of the vocabulary-parallel embedding and cross-entropy are exercised.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "model/hymba_model.h"
#include "parallel/communicator.h"
#include "tests/mpi_test.h"
#include "tests/mpi_training.h"
#include "tests/test_util.h"
#include "trainer/trainer.h"

namespace hymba::test {
namespace {

using namespace mpi_training;

Config model(const fs::path& run_dir, std::vector<std::string> more = {}) {
  more.insert(more.begin(), {"model.num_key_value_heads=4", "model.vocab_size=1025"});
  return tiny(run_dir, more);
}

std::string tp(int n) { return "parallel.tp=" + std::to_string(n); }

class TensorParallel : public JobTest {
 protected:
  Config reference(const fs::path& run_dir) const override { return model(run_dir); }
};

// Every rank of the job is a tensor rank of one replica: TP = 2 (mpirun -np 2) or 4 (-np 4).
TEST_F(TensorParallel, EqualsOneProcess) {
  std::ostringstream log;
  const Config cfg = model(dir_ / "parallel", {tp(size())});
  EXPECT_EQ(train(cfg, *group_, log).steps, 10);
  if (rank() != 0) return;
  EXPECT_NE(log.str().find("1 data-parallel replicas (ZeRO-1) x " + std::to_string(size()) + " tensor-parallel"),
            std::string::npos)
      << log.str();
  expect_same_run(cfg, dir_ / "single", dir_ / "parallel");
}

// TP × DP: 2 tensor ranks in each of size / 2 replicas (2 × 2 under -np 4; 1 × 2 under -np 2).
TEST_F(TensorParallel, InsideDataParallelReplicasEqualsOneProcess) {
  std::ostringstream log;
  const Config cfg = model(dir_ / "grid", {tp(2)});
  train(cfg, *group_, log);
  if (rank() == 0) expect_same_run(cfg, dir_ / "single", dir_ / "grid");
}

// Saved at step 5 by TP = 2 replicas, resumed by TP = job size (and by one process); saved by one
// process, resumed by TP = 2 replicas. Every path ends where the uninterrupted single run ends.
TEST_F(TensorParallel, CheckpointResumesUnderAnotherLayout) {
  std::ostringstream log;
  const Config half = model(dir_ / "tp2-then-tpN", {tp(2), "train.steps=5"});
  train(half, *group_, log);
  train(model(dir_ / "tp2-then-tpN", {tp(size()), "train.resume=auto"}), *group_, log);
  if (rank() == 0) expect_same_run(half, dir_ / "single", dir_ / "tp2-then-tpN");

  train(model(dir_ / "tp2-then-one", {tp(2), "train.steps=5"}), *group_, log);
  if (rank() == 0) {
    train(model(dir_ / "tp2-then-one", {"train.resume=auto"}), log);
    expect_same_run(half, dir_ / "single", dir_ / "tp2-then-one");
    std::ostringstream first_half;
    train(model(dir_ / "one-then-tp2", {"train.steps=5"}), first_half);
  }
  train(model(dir_ / "one-then-tp2", {tp(2), "train.resume=auto"}), *group_, log);
  if (rank() == 0) expect_same_run(half, dir_ / "single", dir_ / "one-then-tp2");
}

// Evaluation and generation read the logits over the whole vocabulary: every rank's columns,
// gathered, equal the single-process model's logits (and the losses agree).
TEST_F(TensorParallel, HostLogitsGatherTheWholeVocabulary) {
  const ModelConfig c = model(dir_ / "unused").model;
  const int64_t B = 2, T = 16, V = c.vocab_size;
  std::vector<int32_t> ids(size_t(B * T)), targets(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 37 + 5) % size_t(V)), targets[i] = int32_t((i * 11 + 3) % size_t(V));
  HymbaModel<float> whole(c, B, T);
  whole.init(9);
  const double want_loss = whole.forward(ids.data(), targets.data());
  const std::vector<float> want(whole.host_logits(), whole.host_logits() + B * T * V);
  const std::unique_ptr<Communicator> comm = make_mpi_communicator(*group_, Ordering::in_order);
  HymbaModel<float> part(c, B, T, 1, {rank(), size(), comm.get()});
  part.init(9);
  EXPECT_NEAR(part.forward(ids.data(), targets.data()), want_loss, 1e-5 * want_loss);
  const float* got = part.host_logits();
  double worst = 0;
  for (int64_t i = 0; i < B * T * V; ++i) worst = std::max(worst, double(std::abs(got[i] - want[size_t(i)])));
  EXPECT_LT(worst, 1e-4);
}

TEST_F(TensorParallel, RefusesATensorSizeThatDoesNotDivideTheJob) {
  std::ostringstream log;
  const int n = size() == 2 ? 4 : 8;  // divides the heads (with 8 of them), not the job
  expect_error([&] { train(model(dir_ / "odd", {tp(n), "model.num_attention_heads=8", "model.num_key_value_heads=8"}), *group_, log); },
               {"parallel.tp: " + std::to_string(n), "does not divide the job's " + std::to_string(size()) + " ranks"});
}

}  // namespace
}  // namespace hymba::test
