// The ablation configs (the files directly in configs/ablations/): every one loads and validates,
// and each differs from hybrid.yaml in exactly the keys its comparison is about, set to the
// intended values. The base is the hymba-125m recipe with only size and run length changed. Also
// the mixer's cross-key check.

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "config/config.h"
#include "core/error.h"

namespace hymba::test {
namespace {

namespace fs = std::filesystem;

const fs::path kAblations = fs::path(HYMBA_SOURCE_DIR) / "configs" / "ablations";

// "section.key" -> the value as YAML text, from the resolved config (bases applied, every
// default spelled out), so two configs compare key by key whatever their files set.
using Flat = std::map<std::string, std::string>;

std::string yaml_text(const YAML::Node& n) {
  YAML::Emitter out;
  out << YAML::Flow << n;
  return out.c_str();
}

Flat flatten(const Config& c) {
  Flat flat;
  for (const auto& section : YAML::Load(c.resolved))
    for (const auto& key : section.second)
      flat[section.first.Scalar() + "." + key.first.Scalar()] = yaml_text(key.second);
  return flat;
}

// Keys whose values differ between a and b, `ignored` aside.
std::set<std::string> differing_keys(const Flat& a, const Flat& b, const std::set<std::string>& ignored) {
  std::set<std::string> keys;
  for (const auto& [key, value] : a)
    if (!ignored.count(key) && (!b.count(key) || b.at(key) != value)) keys.insert(key);
  return keys;
}

Config load(const std::string& file) { return load_config((kAblations / file).string()); }

// What each file changes against hybrid.yaml, and to what (YAML). run.dir differs everywhere
// and is checked on its own.
const std::map<std::string, std::map<std::string, std::string>>& intended() {
  static const std::map<std::string, std::map<std::string, std::string>> table = {
      {"ablation-base.yaml", {}},  // hybrid is the base with the default mixer spelled out
      {"hybrid.yaml", {}},
      {"attention-only.yaml", {{"model.mixer", "attention"}}},
      {"mamba-only.yaml", {{"model.mixer", "mamba"}, {"model.kv_reuse_group", "[]"}}},
      {"no-meta-tokens.yaml", {{"model.num_memory_tokens", "0"}}},
      {"all-global.yaml",
       {{"model.global_attn_idx", "[0, 1, 2, 3, 4, 5, 6, 7]"}, {"model.kv_reuse_group", "[]"}}},
      {"no-kv-reuse.yaml", {{"model.kv_reuse_group", "[]"}}},
  };
  return table;
}

TEST(Ablations, EveryFileIsListedAndEveryListedFileExists) {
  std::set<std::string> on_disk, listed;
  for (const auto& entry : fs::directory_iterator(kAblations))  // subfolders hold other sizes
    if (entry.is_regular_file()) on_disk.insert(entry.path().filename());
  for (const auto& [file, changes] : intended()) listed.insert(file);
  EXPECT_EQ(on_disk, listed);
}

TEST(Ablations, EachDiffersFromHybridInItsIntendedKeysOnly) {
  const Flat hybrid = flatten(load("hybrid.yaml"));
  for (const auto& [file, changes] : intended()) {
    SCOPED_TRACE(file);
    const Flat flat = flatten(load(file));  // loading validates
    std::set<std::string> want;
    for (const auto& [key, value] : changes) {
      want.insert(key);
      ASSERT_TRUE(flat.count(key)) << key;
      EXPECT_EQ(flat.at(key), yaml_text(YAML::Load(value))) << key;
    }
    EXPECT_EQ(differing_keys(flat, hybrid, {"run.dir"}), want);
  }
}

// Each comparison writes to its own folder named after its file: hymba-plot labels the curves
// with the run folder's name.
TEST(Ablations, EachRunsIntoAFolderNamedAfterItsFile) {
  std::set<std::string> dirs;
  for (const auto& [file, changes] : intended()) {
    const std::string dir = load(file).run.dir;
    EXPECT_TRUE(dirs.insert(dir).second) << file << ": run.dir " << dir << " is not unique";
    if (file == "ablation-base.yaml") continue;
    EXPECT_EQ(dir, "runs/ablations/" + fs::path(file).stem().string()) << file;
  }
}

// The base inherits hymba-125m.yaml's recipe (optimizer, data, tokenizer, init, seed) and changes
// only the model's size and the run's length.
TEST(Ablations, BaseIsTheRecipeAtASmallerSize) {
  const Flat base = flatten(load("ablation-base.yaml"));
  const Flat recipe = flatten(load_config(std::string(HYMBA_SOURCE_DIR) + "/configs/hymba-125m.yaml"));
  const std::set<std::string> size_and_length = {
      "model.hidden_size", "model.num_hidden_layers", "model.num_attention_heads",
      "model.num_key_value_heads", "model.intermediate_size",
      "model.mamba_dt_rank",  // auto: ceil(H / 16)
      "model.num_memory_tokens", "model.sliding_window", "model.global_attn_idx",
      "model.kv_reuse_group", "train.steps", "train.batch_size", "train.grad_accum",
      "train.seq_len", "optim.warmup_steps", "eval.every"};
  EXPECT_EQ(differing_keys(base, recipe, {"run.dir"}), size_and_length);
}

std::string error_of(const std::string& file, const std::vector<std::string>& overrides) {
  try {
    load_config((kAblations / file).string(), overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(Ablations, MambaMixerRefusesKvReuseGroups) {
  const std::string want = "command line: model.kv_reuse_group: must be empty when mixer is mamba";
  EXPECT_NE(error_of("mamba-only.yaml", {"model.kv_reuse_group=[[1, 2]]"}).find(want),
            std::string::npos)
      << error_of("mamba-only.yaml", {"model.kv_reuse_group=[[1, 2]]"});
  // The group comes from the base here; the file to blame is where the mixer was set.
  EXPECT_NE(error_of("hybrid.yaml", {"model.mixer=mamba"}).find(want), std::string::npos)
      << error_of("hybrid.yaml", {"model.mixer=mamba"});
  // Without attention the global layers are only unused, not an error.
  EXPECT_EQ(error_of("mamba-only.yaml", {"model.global_attn_idx=[0, 3]"}), "<no error>");
}

}  // namespace
}  // namespace hymba::test
