// Checkpoints (src/io/checkpoint.h) and resuming training from them (train.resume).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/device.h"
#include "core/error.h"
#include "tests/test_util.h"
#include "io/checkpoint.h"
#include "model/layer_plan.h"
#include "model/param_layout.h"
#include "trainer/trainer.h"

namespace hymba::test {
namespace {

namespace fs = std::filesystem;

const std::string kTiny = std::string(HYMBA_SOURCE_DIR) + "/configs/tiny.yaml";

// Prepared corpora are shared by every test (and by concurrent test processes: preparation
// holds a file lock), outside the source tree.
const std::string kCache = "data.cache_dir=" + test_cache_dir();

// A small, fast training shape that still runs every code path of the tiny model.
const std::vector<std::string> kSmallRun = {"train.batch_size=4", "train.seq_len=32", "train.log_every=1",
                                            "eval.batches=2", kCache};

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("hymba_test_ckpt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string error_of(const auto& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string read_bytes(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) lines.push_back(line);
  return lines;
}

// Each metrics line as "step N loss X" or "step N val_loss X", the numbers as the trainer wrote
// them (9 significant digits), so that two runs compare as text.
std::vector<std::string> losses(const fs::path& metrics) {
  std::vector<std::string> out;
  for (const std::string& line : read_lines(metrics)) {
    const auto value = [&](const std::string& key) {
      const size_t at = line.find("\"" + key + "\": ");
      return at == std::string::npos ? std::string() : line.substr(at + key.size() + 4, line.find_first_of(",}", at) - at - key.size() - 4);
    };
    const std::string key = value("loss").empty() ? "val_loss" : "loss";
    out.push_back("step " + value("step") + " " + key + " " + value(key));
  }
  return out;
}

ParamLayout tiny_layout(const std::vector<std::string>& overrides = {}) {
  const Config cfg = load_config(kTiny, overrides);
  return build_param_layout(cfg.model, plan_layers(cfg.model));
}

// Every tensor's elements as random bit patterns (NaNs, infinities and denormals included: the
// file must keep bits, not values), the padding zero.
std::vector<float> random_tensors(const ParamLayout& layout, uint32_t seed) {
  std::vector<float> v(layout.storage, 0.0f);
  std::mt19937 rng(seed);
  for (const ParamTensor& t : layout.tensors) {
    for (const SliceRun& r : slice_runs(t, layout.tp)) {
      for (int64_t i = r.local; i < r.local + r.length; ++i) {
        const uint32_t bits = rng();
        std::memcpy(&v[t.offset + i], &bits, 4);
      }
    }
  }
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Buffers filled with a pattern the load must overwrite everywhere (padding included).
std::vector<float> garbage(const ParamLayout& layout) { return std::vector<float>(layout.storage, -7.25f); }

struct Tensors {
  std::vector<float> params, m, v;
};

Tensors load(const fs::path& path, const ParamLayout& layout) {
  Tensors t{garbage(layout), garbage(layout), garbage(layout)};
  load_checkpoint(path.string(), layout, t.params.data(), t.m.data(), t.v.data());
  return t;
}

// The byte offset of `t`'s data in a checkpoint file: found by its content (64 bytes from the
// middle of the tensor, which random or trained values make unique).
size_t offset_of(const std::string& file, const ParamTensor& t, const std::vector<float>& values) {
  const char* at = reinterpret_cast<const char*>(values.data() + t.offset + t.numel / 2);
  const size_t found = file.find(std::string(at, 64));
  EXPECT_NE(found, std::string::npos) << t.name;
  return found;
}

// ---- the file format ---------------------------------------------------------------------------

// With and without meta tokens: an empty tensor ([0, H]) is stored too.
TEST(Checkpoint, RoundTripsEveryTensorAndTheMetadataBitExactly) {
  const fs::path dir = fresh_dir("roundtrip");
  for (const char* meta_tokens : {"model.num_memory_tokens=8", "model.num_memory_tokens=0"}) {
    SCOPED_TRACE(meta_tokens);
    const ParamLayout layout = tiny_layout({meta_tokens});
    const std::vector<float> params = random_tensors(layout, 1), m = random_tensors(layout, 2),
                             v = random_tensors(layout, 3);
    CheckpointMeta meta;
    meta.step = 123456789;
    meta.adam_steps = 123456700;
    meta.loader_rows = (uint64_t{1} << 63) + 5;
    meta.seed = ~uint64_t{0};
    meta.config = "model:\n  hidden_size: 64\ndata:\n  train: \"/tmp/caf\xc3\xa9.txt\"\n";

    const fs::path full = dir / "full.h5";
    save_checkpoint(full.string(), layout, {params.data(), m.data(), v.data()}, meta);
    EXPECT_FALSE(fs::exists(full.string() + ".tmp"));
    const CheckpointMeta read = read_checkpoint_meta(full.string());
    EXPECT_EQ(read.step, meta.step);
    EXPECT_EQ(read.adam_steps, meta.adam_steps);
    EXPECT_EQ(read.loader_rows, meta.loader_rows);
    EXPECT_EQ(read.seed, meta.seed);
    EXPECT_EQ(read.config, meta.config);
    EXPECT_FALSE(read.gemm.has_value());  // a CPU run's checkpoint has no GEMM algorithms
    Tensors t{garbage(layout), garbage(layout), garbage(layout)};
    const LoadedCheckpoint loaded = load_checkpoint(full.string(), layout, t.params.data(), t.m.data(), t.v.data());
    EXPECT_TRUE(loaded.has_optimizer_state);
    EXPECT_EQ(loaded.meta.config, meta.config);
    EXPECT_TRUE(same_bits(t.params, params));
    EXPECT_TRUE(same_bits(t.m, m));
    EXPECT_TRUE(same_bits(t.v, v));

    // Parameters only (an imported model): the moments read back as zeros, and say so.
    const fs::path bare = dir / "bare.h5";
    save_checkpoint(bare.string(), layout, {params.data(), nullptr, nullptr}, meta);
    t = Tensors{garbage(layout), garbage(layout), garbage(layout)};
    EXPECT_FALSE(load_checkpoint(bare.string(), layout, t.params.data(), t.m.data(), t.v.data()).has_optimizer_state);
    EXPECT_TRUE(same_bits(t.params, params));
    EXPECT_TRUE(same_bits(t.m, std::vector<float>(layout.storage, 0.0f)));
    EXPECT_TRUE(same_bits(t.v, std::vector<float>(layout.storage, 0.0f)));
    EXPECT_LT(fs::file_size(bare), fs::file_size(full) / 2);

    // The moments may be skipped on reading.
    std::vector<float> only = garbage(layout);
    load_checkpoint(full.string(), layout, only.data(), nullptr, nullptr);
    EXPECT_TRUE(same_bits(only, params));
  }
  fs::remove_all(dir);
}

// The GEMM algorithms of a GPU run: every word back as written (the algorithm words are opaque
// bit patterns, so extreme values too); a row that is no GEMM shape is refused, naming the file,
// the table and the row.
TEST(Checkpoint, RoundTripsTheGemmAlgorithmsAndRefusesABadRow) {
  const fs::path dir = fresh_dir("gemm");
  const ParamLayout layout = tiny_layout();
  const std::vector<float> params = random_tensors(layout, 1);
  CheckpointMeta meta;
  GemmChoices choices;
  choices.library_version = 130001;
  for (int64_t i = 0; i < 3; ++i) {
    GemmChoice c{i % 2, 1 - i % 2, 2176 * (i + 1), 1600, 3200, 3200, 3200, 1600, 14, 0, i == 2};
    for (int w = 0; w < kGemmAlgoWords; ++w) c[size_t(kGemmShapeWords + w)] = int64_t(0x8000000000000001ULL) + i * 7 + w;
    choices.shapes.push_back(c);
  }
  meta.gemm = choices;
  const fs::path path = dir / "gpu.h5";
  save_checkpoint(path.string(), layout, {params.data(), nullptr, nullptr}, meta);
  const CheckpointMeta read = read_checkpoint_meta(path.string());
  ASSERT_TRUE(read.gemm.has_value());
  EXPECT_EQ(read.gemm->library_version, choices.library_version);
  EXPECT_EQ(read.gemm->shapes, choices.shapes);

  for (const auto& [word, value, problem] : {std::tuple{2, int64_t(0), "M is 0, below 1"},
                                             std::tuple{10, int64_t(2), "beta_nonzero is 2, not 0 or 1"}}) {
    GemmChoices bad = choices;
    bad.shapes[1][size_t(word)] = value;
    meta.gemm = bad;
    save_checkpoint(path.string(), layout, {params.data(), nullptr, nullptr}, meta);
    const std::string error = error_of([&] { read_checkpoint_meta(path.string()); });
    EXPECT_NE(error.find(path.string() + ": /gemm_algorithms row 1: " + problem), std::string::npos) << error;
  }
  fs::remove_all(dir);
}

TEST(Checkpoint, ACheckpointOfAnotherModelIsRefusedNamingTheTensor) {
  const fs::path dir = fresh_dir("othermodel");
  const ParamLayout layout = tiny_layout();
  const std::vector<float> params = random_tensors(layout, 1);
  const fs::path path = dir / "c.h5";
  save_checkpoint(path.string(), layout, {params.data(), nullptr, nullptr}, CheckpointMeta{});
  const ParamLayout wider = tiny_layout({"model.intermediate_size=128"});
  std::vector<float> out(wider.storage);
  const std::string error = error_of([&] { load_checkpoint(path.string(), wider, out.data(), nullptr, nullptr); });
  EXPECT_NE(error.find(path.string()), std::string::npos) << error;
  EXPECT_NE(error.find("moe.experts.0.gate_proj.weight has shape [192, 64] but the model's is [128, 64]"), std::string::npos)
      << error;
  fs::remove_all(dir);
}

TEST(Checkpoint, ATruncatedOrCorruptCheckpointIsRefusedNamingTheFile) {
  const fs::path dir = fresh_dir("damaged");
  const ParamLayout layout = tiny_layout();
  const std::vector<float> params = random_tensors(layout, 1), m = random_tensors(layout, 2),
                           v = random_tensors(layout, 3);
  const fs::path good = dir / "good.h5";
  save_checkpoint(good.string(), layout, {params.data(), m.data(), v.data()}, CheckpointMeta{});
  const std::string bytes = read_bytes(good);

  const fs::path bad = dir / "bad.h5";
  for (const size_t size : {size_t{0}, size_t{100}, bytes.size() / 3, bytes.size() / 2, bytes.size() - 1}) {
    write_bytes(bad, bytes.substr(0, size));
    const std::string error = error_of([&] { load(bad, layout); });
    EXPECT_NE(error.find(bad.string()), std::string::npos) << "truncated at " << size << ": " << error;
  }

  // One flipped byte in the data of a parameter tensor and of a moment: Fletcher-32 finds it.
  for (const auto& [group, tensor, values] : {std::tuple{"params", &layout.tensors.front(), &params},
                                              std::tuple{"adam_v", &layout.tensors.back(), &v}}) {
    std::string flipped = bytes;
    flipped[offset_of(bytes, *tensor, *values) + 17] ^= 0x10;
    write_bytes(bad, flipped);
    const std::string error = error_of([&] { load(bad, layout); });
    EXPECT_NE(error.find(bad.string()), std::string::npos) << error;
    EXPECT_NE(error.find(std::string("/") + group + "/" + tensor->name), std::string::npos) << error;
  }
  load(good, layout);  // the original is fine: the damage above is what the errors are about
  fs::remove_all(dir);
}

TEST(Checkpoint, ListingIgnoresTemporaryFilesAndPruningKeepsTheNewestAndMultiples) {
  const fs::path dir = fresh_dir("prune");
  EXPECT_EQ(checkpoint_path(dir.string(), 40), (dir / "checkpoint-00000040.h5").string());
  for (int step = 5; step <= 50; step += 5) write_bytes(checkpoint_path(dir.string(), step), "x");
  write_bytes(checkpoint_path(dir.string(), 100000000), "x");  // 9 digits: after 00000050
  const std::vector<std::string> others = {"checkpoint-00000055.h5.tmp", "checkpoint-00000060.orphaned-20.h5",
                                           "checkpoint-123.h5", "checkpoint-0000007x.h5", "notes.h5"};
  for (const std::string& name : others) write_bytes(dir / name, "x");

  std::vector<std::string> expected;
  for (int step = 5; step <= 50; step += 5) expected.push_back(checkpoint_path(dir.string(), step));
  expected.push_back(checkpoint_path(dir.string(), 100000000));
  EXPECT_EQ(list_checkpoints(dir.string()), expected);
  EXPECT_TRUE(list_checkpoints((dir / "missing").string()).empty());

  prune_checkpoints(dir.string(), 3, 20);  // the newest 3, plus steps 20 and 40
  expected = {checkpoint_path(dir.string(), 20), checkpoint_path(dir.string(), 40),
              checkpoint_path(dir.string(), 45), checkpoint_path(dir.string(), 50),
              checkpoint_path(dir.string(), 100000000)};
  EXPECT_EQ(list_checkpoints(dir.string()), expected);
  for (const std::string& name : others) EXPECT_TRUE(fs::exists(dir / name)) << name;

  prune_checkpoints(dir.string(), 2, 0);
  expected = {checkpoint_path(dir.string(), 50), checkpoint_path(dir.string(), 100000000)};
  EXPECT_EQ(list_checkpoints(dir.string()), expected);
  fs::remove_all(dir);
}

// ---- resuming training ---------------------------------------------------------------------

TrainSummary run(const fs::path& dir, const std::vector<std::string>& extra, std::string* log_out = nullptr) {
  std::vector<std::string> overrides = kSmallRun;
  overrides.push_back("run.dir=" + dir.string());
  overrides.insert(overrides.end(), extra.begin(), extra.end());
  std::ostringstream log;
  const TrainSummary s = train(load_config(kTiny, overrides), log);
  if (log_out) *log_out = log.str();
  return s;
}

// The required property: stopping after step 20 and resuming gives exactly the run that never
// stopped. Validation every 10 steps runs in between, so it must leave the training state alone.
TEST(Resume, TwentyStepsPlusTwentyEqualFortyStraight) {
  const fs::path straight = fresh_dir("straight"), split = fresh_dir("split");
  const std::vector<std::string> common = {"checkpoint.every=20", "eval.every=10"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), common.begin(), common.end());
    return more;
  };
  run(straight, with({"train.steps=40"}));
  const TrainSummary first = run(split, with({"train.steps=20"}));
  EXPECT_EQ(first.resumed_from_step, 0);
  EXPECT_EQ(first.steps, 20);
  std::string log;
  const TrainSummary second = run(split, with({"train.steps=40", "train.resume=auto"}), &log);
  EXPECT_EQ(second.resumed_from_step, 20) << log;
  EXPECT_EQ(second.steps, 20);
  EXPECT_NE(log.find(checkpoint_path(split.string(), 20) + ": continuing after step 20"), std::string::npos) << log;

  // Every loss and validation loss, as text: 40 training lines and validation at 10, 20, 30, 40.
  const std::vector<std::string> a = losses(straight / "metrics.jsonl"), b = losses(split / "metrics.jsonl");
  ASSERT_EQ(a.size(), 44u);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a[21], "step 20 val_loss " + a[21].substr(17));
  EXPECT_NEAR(first.final_loss, std::stod(a[20].substr(13)), 1e-7);
  EXPECT_NEAR(second.first_loss, std::stod(a[22].substr(13)), 1e-7);  // step 21

  // The final state, bit for bit: parameters, both moments, step counts and the data cursor.
  const ParamLayout layout = tiny_layout();
  const fs::path end_a = checkpoint_path(straight.string(), 40), end_b = checkpoint_path(split.string(), 40);
  const Tensors ta = load(end_a, layout), tb = load(end_b, layout);
  EXPECT_TRUE(same_bits(ta.params, tb.params));
  EXPECT_TRUE(same_bits(ta.m, tb.m));
  EXPECT_TRUE(same_bits(ta.v, tb.v));
  EXPECT_FALSE(same_bits(ta.params, load(checkpoint_path(split.string(), 20), layout).params));
  const CheckpointMeta ma = read_checkpoint_meta(end_a.string()), mb = read_checkpoint_meta(end_b.string());
  EXPECT_EQ(ma.step, 40);
  EXPECT_EQ(mb.adam_steps, 40);
  EXPECT_EQ(mb.loader_rows, 40u * 4u);
  EXPECT_EQ(ma.loader_rows, mb.loader_rows);
  fs::remove_all(straight);
  fs::remove_all(split);
}

// Damage the two newest checkpoints: auto resume reports each and goes back to the third. The
// steps after it are run again, exactly as the first time (same train.steps, so the same
// learning rates); the first timeline's records of them are kept aside, not deleted.
TEST(Resume, AutoFallsBackPastDamagedCheckpoints) {
  const fs::path dir = fresh_dir("fallback");
  run(dir, {"train.steps=30", "checkpoint.every=10", "data.val=\"\""});
  const ParamLayout layout = tiny_layout();
  const fs::path c20 = checkpoint_path(dir.string(), 20), c30 = checkpoint_path(dir.string(), 30);
  const std::string bytes30 = read_bytes(c30);
  write_bytes(c30, bytes30.substr(0, bytes30.size() / 2));
  std::string bytes20 = read_bytes(c20);
  bytes20[offset_of(bytes20, layout.tensors[1], load(c20, layout).params) + 9] ^= 0x01;
  write_bytes(c20, bytes20);
  write_bytes(dir / "checkpoint-00000040.h5.tmp", "a write that never finished");
  const std::vector<std::string> first_timeline = losses(dir / "metrics.jsonl");
  ASSERT_EQ(first_timeline.size(), 30u);

  std::string log;
  const TrainSummary s = run(dir, {"train.steps=30", "checkpoint.every=10", "data.val=\"\"", "train.resume=auto"}, &log);
  EXPECT_EQ(s.resumed_from_step, 10) << log;
  EXPECT_NE(log.find("skipping a checkpoint that does not load: " + c30.string()), std::string::npos) << log;
  EXPECT_NE(log.find("skipping a checkpoint that does not load: " + c20.string()), std::string::npos) << log;
  EXPECT_NE(log.find("/params/" + layout.tensors[1].name), std::string::npos) << log;
  EXPECT_EQ(log.find(".tmp"), std::string::npos) << log;

  EXPECT_EQ(losses(dir / "metrics.jsonl"), first_timeline);
  EXPECT_EQ(losses(dir / "metrics.orphaned-10.jsonl"),
            std::vector<std::string>(first_timeline.begin() + 10, first_timeline.end()));
  // The damaged files are set aside under names neither resume nor pruning looks at.
  EXPECT_EQ(read_bytes(dir / "checkpoint-00000030.orphaned-10.h5"), bytes30.substr(0, bytes30.size() / 2));
  EXPECT_EQ(read_bytes(dir / "checkpoint-00000020.orphaned-10.h5"), bytes20);
  const std::vector<std::string> expected = {checkpoint_path(dir.string(), 10), c20.string(), c30.string()};
  EXPECT_EQ(list_checkpoints(dir.string()), expected);
  load(c30, layout);  // written anew, whole
  fs::remove_all(dir);
}

TEST(Resume, AChangedModelDataOrSeedKeyIsRefusedNamingIt) {
  const fs::path dir = fresh_dir("changed");
  run(dir, {"train.steps=2", "checkpoint.every=2", "data.val=\"\""});
  const std::string metrics = read_bytes(dir / "metrics.jsonl");
  const std::string checkpoint = checkpoint_path(dir.string(), 2);
  for (const auto& [change, named] :
       {std::pair{"model.intermediate_size=128", "model.intermediate_size (checkpoint: 192, now: 128)"},
        std::pair{"data.train=/elsewhere/corpus.txt", "data.train (checkpoint: "},
        std::pair{"train.seed=7", "train.seed (checkpoint: 1234, now: 7)"}}) {
    const std::string error = error_of([&] {
      run(dir, {"train.steps=4", "train.resume=auto", "data.val=\"\"", change});
    });
    EXPECT_NE(error.find(named), std::string::npos) << error;
    EXPECT_NE(error.find(checkpoint), std::string::npos) << error;
    EXPECT_NE(error.find(kTiny), std::string::npos) << error;
  }
  EXPECT_NE(error_of([&] { run(dir, {"train.steps=4", "data.val=\"\""}); }).find("already holds a run"),
            std::string::npos);
  EXPECT_NE(error_of([&] { run(dir, {"train.steps=1", "train.resume=auto", "data.val=\"\""}); })
                .find("train.steps: 1 is below step 2"),
            std::string::npos);
  EXPECT_EQ(read_bytes(dir / "metrics.jsonl"), metrics);  // refused before touching anything

  // Other keys may change; a checkpoint path continues in a new run.dir.
  const fs::path branch = fresh_dir("branch");
  const TrainSummary s = run(branch, {"train.steps=4", "train.resume=" + checkpoint, "data.val=\"\"", "optim.lr=1e-3"});
  EXPECT_EQ(s.resumed_from_step, 2);
  EXPECT_EQ(s.steps, 2);
  EXPECT_EQ(read_lines(branch / "metrics.jsonl").size(), 2u);  // steps 3 and 4
  fs::remove_all(dir);
  fs::remove_all(branch);
}

// train.gemm_algorithms: timed. On a GPU each fresh run times its own algorithms, so only a resume
// can promise the same bits: it computes with the ones its checkpoint kept. Steps 4..6 resumed
// from step 3 into another run.dir end bit for bit where the run that went on ends. (On the CPU
// the key changes nothing and the checkpoints hold no GEMM algorithms.)
TEST(Resume, TimedGemmAlgorithmsComeBackWithTheCheckpoint) {
  const fs::path dir = fresh_dir("timed"), branch = fresh_dir("timedbranch");
  const std::vector<std::string> timed = {"train.gemm_algorithms=timed", "checkpoint.every=3", "data.val=\"\""};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.end(), timed.begin(), timed.end());
    return more;
  };
  std::string log;
  run(dir, with({"train.steps=6"}), &log);
  const std::string checkpoint = checkpoint_path(dir.string(), 3);
  const CheckpointMeta saved = read_checkpoint_meta(checkpoint);
  const bool gpu = cuda_device_count() > 0;
  EXPECT_EQ(saved.gemm.has_value(), gpu);
  if (gpu) {
    EXPECT_FALSE(saved.gemm->shapes.empty());
    EXPECT_NE(log.find("gemm: timed the cuBLASLt candidates of "), std::string::npos) << log;
  }
  run(branch, with({"train.steps=6", "train.resume=" + checkpoint}), &log);
  if (gpu) {
    EXPECT_NE(log.find("gemm: " + std::to_string(saved.gemm->shapes.size()) + " GEMM algorithms from " + checkpoint + "\n"),
              std::string::npos)
        << log;
    EXPECT_EQ(log.find("gemm: timed"), std::string::npos) << log;  // every shape came from the checkpoint
  }
  const ParamLayout layout = tiny_layout();
  const Tensors a = load(checkpoint_path(dir.string(), 6), layout), b = load(checkpoint_path(branch.string(), 6), layout);
  EXPECT_TRUE(same_bits(a.params, b.params));
  EXPECT_TRUE(same_bits(a.m, b.m));
  EXPECT_TRUE(same_bits(a.v, b.v));
  fs::remove_all(dir);
  fs::remove_all(branch);
}

TEST(Resume, AutoWithoutACheckpointStartsFreshAndKeepsTheOldRecords) {
  const fs::path dir = fresh_dir("nocheckpoint");
  run(dir, {"train.steps=2", "data.val=\"\""});
  const std::string before = read_bytes(dir / "metrics.jsonl");
  std::string log;
  const TrainSummary s = run(dir, {"train.steps=2", "train.resume=auto", "data.val=\"\""}, &log);
  EXPECT_EQ(s.resumed_from_step, 0);
  EXPECT_NE(log.find("no checkpoint in " + dir.string() + "; starting fresh"), std::string::npos) << log;
  EXPECT_EQ(read_bytes(dir / "metrics.orphaned-0.jsonl"), before);
  EXPECT_EQ(losses(dir / "metrics.jsonl"), losses(dir / "metrics.orphaned-0.jsonl"));  // same seed
  fs::remove_all(dir);
}

TEST(Eval, EveryNeedsValidationData) {
  const fs::path dir = fresh_dir("evalval");
  const std::string error = error_of([&] { run(dir, {"train.steps=2", "eval.every=1", "data.val=\"\""}); });
  EXPECT_NE(error.find("command line: eval.every: 1 needs validation data, but data.val is not set"),
            std::string::npos)
      << error;
  EXPECT_FALSE(fs::exists(dir / "metrics.jsonl"));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace hymba::test
