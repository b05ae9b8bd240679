// The config loader: the shipped configs, base files, command-line overrides, every class of bad
// value (each must stop with a message naming the file and the key), paths, and Config::resolved.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <tuple>
#include <unistd.h>

#include "config/config.h"
#include "core/error.h"

namespace fs = std::filesystem;
using hymba::Config;
using hymba::load_config;
using Groups = std::vector<std::vector<int64_t>>;

namespace {

std::string source_path(const std::string& rel) { return std::string(HYMBA_SOURCE_DIR) + "/" + rel; }

std::string normal(const fs::path& p) { return p.lexically_normal().string(); }

// The message of the hymba::Error that `f` throws, or a marker no expectation matches.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const hymba::Error& e) {
    return e.what();
  }
  return "<no error>";
}

::testing::AssertionResult contains_all(const std::string& message, const std::vector<std::string>& parts) {
  for (const std::string& part : parts)
    if (message.find(part) == std::string::npos)
      return ::testing::AssertionFailure() << "\"" << message << "\" lacks \"" << part << "\"";
  return ::testing::AssertionSuccess();
}

// The KV-reuse rule of the shipped sizes: pair consecutive sliding-window layers between the global
// ones; a run of odd length starts with a group of three.
Groups groups_by_rule(const std::vector<int64_t>& global, int64_t num_layers) {
  Groups groups;
  auto is_global = [&](int64_t l) { return std::find(global.begin(), global.end(), l) != global.end(); };
  for (int64_t l = 0; l < num_layers;) {
    if (is_global(l)) {
      ++l;
      continue;
    }
    int64_t end = l;
    while (end < num_layers && !is_global(end)) ++end;
    for (int64_t size = (end - l) % 2 ? 3 : 2; l < end; l += size, size = 2) {
      groups.emplace_back();
      for (int64_t j = l; j < l + size; ++j) groups.back().push_back(j);
    }
  }
  return groups;
}

// Every field of a Config but path and resolved, for whole-struct comparison.
auto all_fields(const Config& c) {
  const auto& m = c.model;
  const auto& t = c.train;
  const auto& o = c.optim;
  return std::tie(m.hidden_size, m.num_hidden_layers, m.num_attention_heads, m.num_key_value_heads,
                  m.intermediate_size, m.vocab_size, m.mamba_expand, m.mamba_d_state, m.mamba_d_conv,
                  m.mamba_dt_rank, m.num_memory_tokens, m.sliding_window, m.global_attn_idx,
                  m.kv_reuse_group, m.rms_norm_eps, m.rope_theta, m.rope_type, m.max_position_embeddings,
                  m.orig_max_position_embeddings, m.pad_token_id, m.bos_token_id, m.eos_token_id,
                  m.initializer_range, m.dt_init, m.dt_min, m.dt_max, t.steps, t.batch_size, t.seq_len,
                  t.grad_accum, t.seed, t.device, t.precision, t.recompute, t.log_every, t.threads, o.lr, o.min_lr,
                  o.warmup_steps, o.weight_decay, o.beta1, o.beta2, o.eps, o.grad_clip, o.no_decay,
                  c.data.format, c.data.train, c.data.val, c.data.tokenizer, c.data.cache_dir, m.mixer,
                  m.attention_backend,
                  t.resume, c.checkpoint.every, c.checkpoint.keep, c.checkpoint.keep_every, c.eval.every,
                  c.eval.batches, c.run.dir);
}

// A fresh directory per test for YAML files, removed afterwards.
class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = fs::temp_directory_path() /
           ("hymba_test_config_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

  // A valid small config (the tiny model) to build bad variants on with `base: ok.yaml`.
  std::string write_ok() {
    return write("ok.yaml", R"(
model:
  hidden_size: 64
  num_hidden_layers: 4
  num_attention_heads: 4
  num_key_value_heads: 2
  intermediate_size: 192
  vocab_size: 256
  num_memory_tokens: 8
  sliding_window: 16
  global_attn_idx: [0, 3]
  kv_reuse_group: [[1, 2]]
data:
  train: corpus.txt
  tokenizer: tokenizer
)");
  }

  fs::path dir_;
};

// ---- the shipped configs --------------------------------------------------------------------------

TEST(ShippedConfigs, TinyHasEveryCodePathOn) {
  const Config c = load_config(source_path("configs/tiny.yaml"));
  const auto& m = c.model;
  EXPECT_EQ(m.hidden_size, 64);
  EXPECT_EQ(m.num_hidden_layers, 4);
  EXPECT_EQ(m.num_attention_heads, 4);
  EXPECT_EQ(m.num_key_value_heads, 2);
  EXPECT_EQ(m.intermediate_size, 192);
  EXPECT_EQ(m.vocab_size, 1024);
  EXPECT_EQ(m.mamba_expand, 2);
  EXPECT_EQ(m.mamba_d_state, 16);
  EXPECT_EQ(m.mamba_d_conv, 4);
  EXPECT_EQ(m.mamba_dt_rank, 4);  // auto = ceil(64/16)
  EXPECT_EQ(m.num_memory_tokens, 8);
  EXPECT_EQ(m.sliding_window, 16);
  EXPECT_LT(m.sliding_window, c.train.seq_len);  // the window really cuts
  EXPECT_EQ(m.global_attn_idx, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(m.kv_reuse_group, (Groups{{1, 2}}));
  EXPECT_EQ(m.rope_type, "ntk");  // model defaults
  EXPECT_EQ(m.dt_init, hymba::DtInit::mamba);
  EXPECT_EQ(m.max_position_embeddings, 8192);
  EXPECT_EQ(c.train.steps, 300);
  EXPECT_EQ(c.train.batch_size, 8);
  EXPECT_EQ(c.train.seq_len, 64);
  EXPECT_EQ(c.train.log_every, 25);
  EXPECT_EQ(c.train.seed, 1234u);
  EXPECT_DOUBLE_EQ(c.optim.lr, 3e-3);
  EXPECT_DOUBLE_EQ(c.optim.min_lr, 3e-4);
  EXPECT_EQ(c.optim.warmup_steps, 20);
  EXPECT_DOUBLE_EQ(c.optim.weight_decay, 0.1);
  EXPECT_DOUBLE_EQ(c.optim.grad_clip, 1.0);
  EXPECT_EQ(c.data.format, "text");
  EXPECT_EQ(c.data.tokenizer, normal(source_path("data/tokenizers/austen-1k")));
  EXPECT_EQ(c.data.train, normal(source_path("data/austen/train.txt.gz")));
  EXPECT_EQ(c.data.val, normal(source_path("data/austen/val.txt.gz")));
  EXPECT_EQ(c.run.dir, "runs/tiny");
}

TEST(ShippedConfigs, Hymba1_5bIsTheOfficialArchitecture) {
  const Config c = load_config(source_path("configs/hymba-1.5b.yaml"));
  const auto& m = c.model;  // HYMBA_SPEC §4
  EXPECT_EQ(m.hidden_size, 1600);
  EXPECT_EQ(m.num_hidden_layers, 32);
  EXPECT_EQ(m.num_attention_heads, 25);
  EXPECT_EQ(m.num_key_value_heads, 5);
  EXPECT_EQ(m.intermediate_size, 5504);
  EXPECT_EQ(m.vocab_size, 32001);
  EXPECT_EQ(m.mamba_expand, 2);
  EXPECT_EQ(m.mamba_d_state, 16);
  EXPECT_EQ(m.mamba_d_conv, 4);
  EXPECT_EQ(m.mamba_dt_rank, 100);  // auto = ceil(1600/16)
  EXPECT_EQ(m.num_memory_tokens, 128);
  EXPECT_EQ(m.sliding_window, 1024);
  EXPECT_EQ(m.global_attn_idx, (std::vector<int64_t>{0, 15, 31}));
  const Groups official = {{1, 2},   {3, 4},   {5, 6},   {7, 8},   {9, 10},  {11, 12}, {13, 14},
                           {16, 17, 18},       {19, 20}, {21, 22}, {23, 24}, {25, 26}, {27, 28}, {29, 30}};
  EXPECT_EQ(m.kv_reuse_group, official);  // §2.5
  EXPECT_EQ(m.rms_norm_eps, 1e-6);
  EXPECT_EQ(m.rope_theta, 10000.0);
  EXPECT_EQ(m.rope_type, "ntk");
  EXPECT_EQ(m.max_position_embeddings, 8192);
  EXPECT_EQ(m.orig_max_position_embeddings, 2048);
  EXPECT_EQ(m.pad_token_id, 0);
  EXPECT_EQ(m.bos_token_id, 1);
  EXPECT_EQ(m.eos_token_id, 2);
  EXPECT_EQ(m.initializer_range, 0.02);
  EXPECT_EQ(m.head_dim(), 64);
  EXPECT_EQ(m.v_head_dim(), 128);
  EXPECT_EQ(c.train.seq_len, 2048);
}

TEST(ShippedConfigs, Hymba125mAnd350mFollowThe1_5bRecipe) {
  const Config big = load_config(source_path("configs/hymba-1.5b.yaml"));
  const Config c125 = load_config(source_path("configs/hymba-125m.yaml"));
  const Config c350 = load_config(source_path("configs/hymba-350m.yaml"));

  EXPECT_EQ(c125.model.hidden_size, 512);
  EXPECT_EQ(c125.model.num_hidden_layers, 24);
  EXPECT_EQ(c125.model.num_attention_heads, 8);
  EXPECT_EQ(c125.model.num_key_value_heads, 4);
  EXPECT_EQ(c125.model.intermediate_size, 1536);
  EXPECT_EQ(c125.model.mamba_dt_rank, 32);  // auto = ceil(512/16), not the 1.5B's 100
  EXPECT_EQ(c125.model.global_attn_idx, (std::vector<int64_t>{0, 12, 23}));
  EXPECT_EQ(c125.model.kv_reuse_group, (Groups{{1, 2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11},
                                               {13, 14}, {15, 16}, {17, 18}, {19, 20}, {21, 22}}));
  EXPECT_EQ(c125.run.dir, "runs/hymba-125m");

  EXPECT_EQ(c350.model.hidden_size, 768);
  EXPECT_EQ(c350.model.num_hidden_layers, 32);
  EXPECT_EQ(c350.model.num_attention_heads, 12);
  EXPECT_EQ(c350.model.num_key_value_heads, 4);
  EXPECT_EQ(c350.model.intermediate_size, 2304);
  EXPECT_EQ(c350.model.mamba_dt_rank, 48);
  EXPECT_EQ(c350.model.global_attn_idx, big.model.global_attn_idx);
  EXPECT_EQ(c350.model.kv_reuse_group, big.model.kv_reuse_group);
  EXPECT_EQ(c350.run.dir, "runs/hymba-350m");

  for (const Config* c : {&c125, &c350}) {  // the recipe
    EXPECT_EQ(c->model.head_dim(), 64);
    EXPECT_EQ(c->model.v_head_dim(), 128);
    EXPECT_EQ(c->model.mamba_d_state, 16);
    EXPECT_EQ(c->model.mamba_d_conv, 4);
    EXPECT_EQ(c->model.sliding_window, 1024);
    EXPECT_EQ(c->model.num_memory_tokens, 128);
    EXPECT_EQ(c->model.vocab_size, 32001);
    EXPECT_EQ(c->train.seq_len, big.train.seq_len);
    EXPECT_EQ(c->optim.warmup_steps, big.optim.warmup_steps);
  }
}

TEST(ShippedConfigs, KvReuseGroupsFollowTheRule) {
  // The rule reproduces the official list, so it is the right rule for the smaller sizes.
  EXPECT_EQ(groups_by_rule({0, 15, 31}, 32),
            (Groups{{1, 2}, {3, 4}, {5, 6}, {7, 8}, {9, 10}, {11, 12}, {13, 14}, {16, 17, 18}, {19, 20},
                    {21, 22}, {23, 24}, {25, 26}, {27, 28}, {29, 30}}));
  for (const char* name : {"tiny", "hymba-125m", "hymba-350m", "hymba-1.5b"}) {
    const Config c = load_config(source_path(std::string("configs/") + name + ".yaml"));
    EXPECT_EQ(c.model.kv_reuse_group, groups_by_rule(c.model.global_attn_idx, c.model.num_hidden_layers))
        << name;
  }
}

// ---- base files and overrides -----------------------------------------------------------------------

TEST_F(ConfigFiles, BaseKeysAreOverriddenKeyByKeyAndChain) {
  write_ok();
  write("mid.yaml", "base: ok.yaml\nmodel:\n  hidden_size: 128\ntrain:\n  steps: 7\n");
  const std::string top = write("sub/top.yaml", "base: ../mid.yaml\ntrain:\n  steps: 9\n");
  const Config c = load_config(top);
  EXPECT_EQ(c.model.hidden_size, 128);      // mid over ok
  EXPECT_EQ(c.model.num_hidden_layers, 4);  // from ok
  EXPECT_EQ(c.model.mamba_dt_rank, 8);      // auto, from the final hidden_size
  EXPECT_EQ(c.train.steps, 9);              // top over mid
  EXPECT_EQ(c.train.batch_size, 8);         // default
  EXPECT_EQ(c.path, top);
}

TEST_F(ConfigFiles, BaseCycleAndMissingBaseAreErrors) {
  write_ok();
  const std::string a = write("a.yaml", "base: b.yaml\n");
  write("b.yaml", "base: a.yaml\n");
  EXPECT_TRUE(contains_all(error_of([&] { load_config(a); }), {"b.yaml: base: a.yaml", "cycle"}));
  const std::string c = write("c.yaml", "base: nowhere.yaml\n");
  EXPECT_TRUE(contains_all(error_of([&] { load_config(c); }), {"c.yaml: base:", "nowhere.yaml", "not found"}));
}

TEST_F(ConfigFiles, OverridesSetScalarsAndLists) {
  const std::string ok = write_ok();
  const Config c = load_config(ok, {"train.steps=7", "train.steps=11", "model.global_attn_idx=[0,2]",
                                    "model.kv_reuse_group=[[1],[3]]", "model.kv_reuse_group=[]",
                                    "train.device=cpu", "optim.no_decay=[norm]", "model.mamba_dt_rank=3"});
  EXPECT_EQ(c.train.steps, 11);  // the last override wins
  EXPECT_EQ(c.model.global_attn_idx, (std::vector<int64_t>{0, 2}));
  EXPECT_TRUE(c.model.kv_reuse_group.empty());
  EXPECT_EQ(c.train.device, "cpu");
  EXPECT_EQ(c.optim.no_decay, (std::vector<std::string>{"norm"}));
  EXPECT_EQ(c.model.mamba_dt_rank, 3);
  // `auto` on the command line replaces a number set in a file.
  const std::string fixed = write("fixed.yaml", "base: ok.yaml\nmodel:\n  mamba_dt_rank: 9\n");
  EXPECT_EQ(load_config(fixed).model.mamba_dt_rank, 9);
  EXPECT_EQ(load_config(fixed, {"model.mamba_dt_rank=auto"}).model.mamba_dt_rank, 4);
}

TEST_F(ConfigFiles, BadOverridesNameTheCommandLine) {
  const std::string ok = write_ok();
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"train.steps", {"command line", "train.steps", "section.key=value"}},
      {"steps=3", {"command line", "steps=3", "section.key=value"}},
      {"modle.hidden_size=3", {"command line: modle.hidden_size: unknown section", "did you mean model?"}},
      {"model.hiden_size=3", {"command line: model.hiden_size: unknown key", "did you mean model.hidden_size?"}},
      {"train.steps=abc", {"command line: train.steps: expected an integer, got abc"}},
      {"train.steps=0", {"command line: train.steps: 0 must be >= 1"}},
      {"model.global_attn_idx=[0,3", {"command line: model.global_attn_idx: cannot read \"[0,3\""}},
  };
  for (const auto& [override, parts] : cases)
    EXPECT_TRUE(contains_all(error_of([&] { load_config(ok, {override}); }), parts)) << override;
}

// ---- bad values ---------------------------------------------------------------------------------------

// Each case is a file on top of the valid ok.yaml; its error must name that file and the key.
TEST_F(ConfigFiles, EveryClassOfBadValueNamesTheFileAndKey) {
  write_ok();
  struct Case {
    std::string yaml, message;
  };
  const std::vector<Case> cases = {
      // unknown names
      {"modle:\n  hidden_size: 64", "modle: unknown section \"modle\" (did you mean model?)"},
      {"model:\n  hiden_size: 64", "model.hiden_size: unknown key (did you mean model.hidden_size?)"},
      {"train:\n  lr: 0.1", "train.lr: unknown key (did you mean optim.lr?)"},
      {"model:\n  hidden_size: 64\n  hidden_size: 64", "model.hidden_size: set twice in this file"},
      {"model: 3", "model: expected keys, got 3"},
      // types
      {"model:\n  hidden_size: wide", "model.hidden_size: expected an integer, got wide"},
      {"model:\n  hidden_size: 64.5", "model.hidden_size: expected an integer, got 64.5"},
      {"model:\n  hidden_size: \"64\"", "model.hidden_size: expected an integer, got \"64\""},
      {"model:\n  hidden_size: [64]", "model.hidden_size: expected an integer, got [64]"},
      {"model:\n  hidden_size:", "model.hidden_size: expected an integer, got nothing"},
      {"model:\n  rms_norm_eps: .inf", "model.rms_norm_eps: expected a number, got .inf"},
      {"model:\n  global_attn_idx: 3", "model.global_attn_idx: expected a list of integers, got 3"},
      {"model:\n  kv_reuse_group: [[1, x]]", "model.kv_reuse_group: expected a list of lists of integers"},
      {"model:\n  mamba_dt_rank: many", "model.mamba_dt_rank: expected an integer or auto, got many"},
      {"model:\n  dt_init: normal", "model.dt_init: expected mamba or zero, got normal"},
      {"train:\n  recompute: some", "train.recompute: expected none, norms, mlp or all, got some"},
      {"train:\n  seed: -1", "train.seed: expected a non-negative integer, got -1"},
      // the model's own values
      {"model:\n  num_attention_heads: 5", "model.num_attention_heads: 5 does not divide hidden_size 64"},
      {"model:\n  num_attention_heads: 0", "model.num_attention_heads: 0 must be >= 1"},
      {"model:\n  hidden_size: 60", "model.num_attention_heads: 4 heads give head_dim 15"},
      {"model:\n  num_key_value_heads: 3", "model.num_key_value_heads: 3 does not divide num_attention_heads 4"},
      {"model:\n  mamba_dt_rank: 0", "model.mamba_dt_rank: 0 must be >= 1"},
      {"model:\n  vocab_size: 1", "model.vocab_size: 1 must be >= 2"},
      {"model:\n  eos_token_id: 256", "model.eos_token_id: 256 is outside [0, 256)"},
      {"model:\n  pad_token_id: -1", "model.pad_token_id: -1 is outside [0, 256)"},
      {"model:\n  sliding_window: 0", "model.sliding_window: 0 must be >= 1"},
      {"model:\n  num_memory_tokens: -1", "model.num_memory_tokens: -1 must be >= 0"},
      {"model:\n  rms_norm_eps: 0", "model.rms_norm_eps: 0 must be > 0"},
      {"model:\n  rope_theta: -1", "model.rope_theta: -1 must be > 0"},
      {"model:\n  rope_type: yarn", "model.rope_type: \"yarn\" must be one of ntk, default"},
      {"model:\n  max_position_embeddings: 1024",
       "model.max_position_embeddings: 1024 must be >= orig_max_position_embeddings 2048"},
      {"model:\n  orig_max_position_embeddings: 0", "model.orig_max_position_embeddings: 0 must be >= 1"},
      {"model:\n  initializer_range: 0", "model.initializer_range: 0 must be > 0"},
      {"model:\n  dt_min: 0", "model.dt_min: 0 must be > 0"},
      {"model:\n  dt_min: 0.5", "model.dt_max: 0.1 must be > dt_min 0.5 (the default: not set in any file)"},
      // layers
      {"model:\n  global_attn_idx: [0, 4]", "model.global_attn_idx: layer 4 is outside [0, 4)"},
      {"model:\n  global_attn_idx: [0, 3, 0]", "model.global_attn_idx: layer 0 appears twice"},
      {"model:\n  kv_reuse_group: [[2, 3]]", "model.kv_reuse_group: group [2, 3] contains global layer 3"},
      {"model:\n  kv_reuse_group: [[1]]", "model.kv_reuse_group: group [1] has fewer than 2 layers"},
      {"model:\n  kv_reuse_group: [[2, 1]]", "model.kv_reuse_group: group [2, 1] is not consecutive"},
      {"model:\n  num_hidden_layers: 8\n  kv_reuse_group: [[1, 2], [2, 3]]",
       "model.kv_reuse_group: group [2, 3]: layer 2 is already in another group"},
      {"model:\n  num_hidden_layers: 8\n  kv_reuse_group: [[4, 6]]",
       "model.kv_reuse_group: group [4, 6] is not consecutive"},
      {"model:\n  kv_reuse_group: [[4, 5]]", "model.kv_reuse_group: group [4, 5]: layer 4 is outside [0, 4)"},
      // train
      {"train:\n  steps: -1", "train.steps: -1 must be >= 1"},
      {"train:\n  batch_size: 0", "train.batch_size: 0 must be >= 1"},
      {"train:\n  seq_len: 0", "train.seq_len: 0 must be >= 1"},
      {"train:\n  grad_accum: 0", "train.grad_accum: 0 must be >= 1"},
      {"train:\n  log_every: 0", "train.log_every: 0 must be >= 1"},
      {"train:\n  threads: -2", "train.threads: -2 must be >= 0"},
      {"train:\n  device: tpu", "train.device: \"tpu\" must be one of auto, cpu, cuda"},
      {"train:\n  precision: fp16", "train.precision: \"fp16\" must be one of fp32, bf16"},
      {"train:\n  device: cpu\n  precision: bf16", "train.precision: bf16 needs the CUDA backend"},
      // optim
      {"optim:\n  lr: 0", "optim.lr: 0 must be > 0"},
      {"optim:\n  min_lr: -0.1", "optim.min_lr: -0.1 must be >= 0"},
      {"optim:\n  min_lr: 0.001", "optim.min_lr: 0.001 must be <= lr 0.0003"},
      {"optim:\n  warmup_steps: -1", "optim.warmup_steps: -1 must be >= 0"},
      {"optim:\n  weight_decay: -0.1", "optim.weight_decay: -0.1 must be >= 0"},
      {"optim:\n  beta1: 1", "optim.beta1: 1 must be in [0, 1)"},
      {"optim:\n  beta2: -0.5", "optim.beta2: -0.5 must be in [0, 1)"},
      {"optim:\n  eps: 0", "optim.eps: 0 must be > 0"},
      {"optim:\n  grad_clip: -1", "optim.grad_clip: -1 must be >= 0"},
      {"optim:\n  no_decay: [norm, weights]", "optim.no_decay: \"weights\" must be one of norm, bias"},
      // data and run
      {"data:\n  format: bytes", "data.format: \"bytes\" must be one of text, shards"},
      {"data:\n  tokenizer: \"\"", "data.tokenizer: must name a tokenizer folder when data.format is text"},
      {"data:\n  cache_dir: \"\"", "data.cache_dir: must not be empty"},
      {"data:\n  train: \"\"", "data.train: must name the training data when data.format is text"},
      {"run:\n  dir: \"\"", "run.dir: must not be empty"},
      {"model:\n  mixer: both", "model.mixer: \"both\" must be one of hybrid, attention, mamba"},
      {"model:\n  attention_backend: cudnn", "model.attention_backend: \"cudnn\" must be one of native, simple"},
      {"checkpoint:\n  keep: 0", "checkpoint.keep: 0 must be >= 1"},
      {"eval:\n  every: -1", "eval.every: -1 must be >= 0"},
  };
  for (const Case& c : cases) {
    const std::string bad = write("bad.yaml", "base: ok.yaml\n" + c.yaml + "\n");
    EXPECT_TRUE(contains_all(error_of([&] { load_config(bad); }), {bad + ": " + c.message})) << c.yaml;
  }
}

TEST_F(ConfigFiles, ErrorsNameTheFileThatSetTheKey) {
  write_ok();
  const std::string base = write("base.yaml", "base: ok.yaml\ntrain:\n  steps: 0\n");
  const std::string top = write("top.yaml", "base: base.yaml\nmodel:\n  num_hidden_layers: 4\n");
  EXPECT_TRUE(contains_all(error_of([&] { load_config(top); }), {base + ": train.steps: 0 must be >= 1"}));
  // A check across keys blames the latest file among them: heads come from ok.yaml, the width
  // that they fail to divide from wide.yaml.
  const std::string wide = write("wide.yaml", "base: ok.yaml\nmodel:\n  hidden_size: 66\n");
  EXPECT_TRUE(contains_all(error_of([&] { load_config(wide); }),
                           {wide + ": model.num_attention_heads: 4 does not divide hidden_size 66"}));
}

TEST_F(ConfigFiles, UnreadableFilesAreNamed) {
  const std::string missing = (dir_ / "missing.yaml").string();
  EXPECT_TRUE(contains_all(error_of([&] { load_config(missing); }), {missing + ": config file not found"}));
  const std::string bad = write("syntax.yaml", "model:\n  hidden_size: 64\n  global_attn_idx: [0, 3\n");
  EXPECT_TRUE(contains_all(error_of([&] { load_config(bad); }), {bad + ":4:", "YAML syntax error"}));
  const std::string list = write("list.yaml", "- model\n");
  EXPECT_TRUE(contains_all(error_of([&] { load_config(list); }), {list + ": expected sections"}));
}

TEST(Validate, ChecksConfigsBuiltInCode) {
  Config c = load_config(source_path("configs/tiny.yaml"));
  EXPECT_NO_THROW(hymba::validate(c, "code"));
  c.model.num_attention_heads = 5;
  EXPECT_EQ(error_of([&] { hymba::validate(c, "code"); }),
            "code: model.num_attention_heads: 5 does not divide hidden_size 64");
  EXPECT_TRUE(contains_all(error_of([] { hymba::validate(Config{}, "code"); }),
                           {"code: model.hidden_size: 0 must be >= 1"}));
}

// ---- paths and the resolved text ------------------------------------------------------------------------

TEST_F(ConfigFiles, DataPathsAreRelativeToTheFileThatSetsThem) {
  write("base/b.yaml", "data:\n  train: ../corpus/./train.txt\n  val: /abs/val.txt\n  tokenizer: tok\n");
  const std::string top = write("sub/deeper/top.yaml", R"(
base: ../../base/b.yaml
model: {hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 4,
        intermediate_size: 64, vocab_size: 256, sliding_window: 8}
run: {dir: out/run}
)");
  const Config c = load_config(top);
  EXPECT_EQ(c.data.train, normal(fs::absolute(dir_ / "corpus/train.txt")));  // need not exist
  EXPECT_EQ(c.data.val, "/abs/val.txt");
  EXPECT_EQ(c.data.tokenizer, normal(fs::absolute(dir_ / "base/tok")));
  EXPECT_EQ(c.run.dir, "out/run");  // relative to the working directory
  EXPECT_EQ(c.data.cache_dir, ".cache/hymba");  // likewise
  const Config o = load_config(top, {"data.train=rel/t.txt"});
  EXPECT_EQ(o.data.train, normal(fs::current_path() / "rel/t.txt"));
}

TEST_F(ConfigFiles, ResolvedTextLoadsBackToTheSameConfig) {
  for (const char* name : {"tiny", "hymba-125m", "hymba-1.5b"}) {
    const Config c = load_config(source_path(std::string("configs/") + name + ".yaml"),
                                 {"train.steps=5", "data.val=rel/v.txt", "optim.lr=0.1", "run.dir=\"~\""});
    EXPECT_EQ(c.resolved.find("base"), std::string::npos) << c.resolved;
    EXPECT_NE(c.resolved.find("mamba_dt_rank: " + std::to_string(c.model.mamba_dt_rank)), std::string::npos);
    const std::string copy = write(std::string("elsewhere/") + name + ".yaml", c.resolved);
    const Config back = load_config(copy);
    EXPECT_TRUE(all_fields(back) == all_fields(c)) << name << ":\n" << c.resolved;
    EXPECT_EQ(back.resolved, c.resolved) << name;
    EXPECT_EQ(back.run.dir, "~");  // stays a string, not YAML's null
  }
}

}  // namespace
