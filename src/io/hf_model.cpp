#include "io/hf_model.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <list>
#include <map>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "io/hf_config.h"

namespace hymba {
namespace {

namespace fs = std::filesystem;

// "a, b, c and 4 more": a list of names short enough for an error message.
std::string some_names(const std::vector<std::string>& names) {
  constexpr size_t kShown = 5;
  std::string out;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > kShown) out += detail::concat(" and ", names.size() - kShown, " more");
  return out;
}

// Every override import_config passes comes from config.json, so that is the file to blame.
[[noreturn]] void blame_config_json(const Error& e, const std::string& json_path) {
  const std::string what = e.what(), cli = "command line: ";
  fail(what.rfind(cli, 0) == 0 ? json_path + ": " + what.substr(cli.size()) : what);
}

}  // namespace

std::vector<std::pair<std::string, std::vector<int64_t>>> hf_tensor_shapes(const ParamLayout& layout) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (const ParamTensor& t : layout.tensors) out.emplace_back(t.name, t.full_shape);
  return out;
}

HfWritten write_hf_model(const std::string& dir, const ModelConfig& c, const ParamLayout& layout,
                         const float* params, StDtype dtype) {
  const std::string config = hf_config_json(c, dtype);  // first: refuses models without an HF form
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir, ": cannot create the folder (", ec.message(), ")");
  std::vector<StTensorData> tensors;
  std::list<std::vector<float>> packed;  // the padded tensors' HF elements
  for (const ParamTensor& t : layout.tensors) {
    tensors.push_back({t.name, t.full_shape, hf_elements(t, params, packed.emplace_back())});
  }

  HfWritten w;
  w.safetensors_path = (fs::path(dir) / "model.safetensors").string();
  w.config_path = (fs::path(dir) / "config.json").string();
  write_safetensors(w.safetensors_path, tensors, dtype);
  write_file_atomically(w.config_path, config);
  w.tensors = int64_t(tensors.size());
  w.safetensors_bytes = fs::file_size(w.safetensors_path);
  return w;
}

HfRead read_hf_weights(const std::string& path, const ParamLayout& layout, float* params) {
  SafetensorsReader file(path);
  std::map<std::string, const ParamTensor*> wanted;
  for (const ParamTensor& t : layout.tensors) wanted[t.name] = &t;
  const ParamTensor* embed = wanted.at("model.embed_tokens.weight");

  std::vector<std::string> unknown, missing;
  for (const StTensorInfo& info : file.tensors())
    if (!wanted.count(info.name) && info.name != "lm_head.weight") unknown.push_back(info.name);
  if (!unknown.empty()) {
    fail(path, ": tensors that are not parameters of the model config.json describes: ", some_names(unknown));
  }
  for (const ParamTensor& t : layout.tensors)
    if (!file.find(t.name)) missing.push_back(t.name);
  if (!missing.empty()) fail(path, ": missing tensors: ", some_names(missing));

  HfRead r;
  const auto read = [&](const StTensorInfo& info, const ParamTensor& t, float* out) {
    if (info.shape != t.full_shape) {
      fail(path, ": tensor ", info.name, " has shape ", st_shape_text(info.shape), " but config.json gives ",
           st_shape_text(t.full_shape));
    }
    file.read(info, out);
    ++(info.dtype == StDtype::f32 ? r.f32_tensors : r.bf16_tensors);
  };
  std::vector<float> scratch;
  for (const ParamTensor& t : layout.tensors) {
    read_hf_elements(t, params, scratch, [&](float* hf) { read(*file.find(t.name), t, hf); });
  }

  if (const StTensorInfo* head = file.find("lm_head.weight")) {
    std::vector<float> values(size_t(embed->full_numel()));
    read(*head, *embed, values.data());
    // Bit for bit, so that a NaN in both still counts as the same tensor.
    if (std::memcmp(values.data(), hf_elements(*embed, params, scratch), values.size() * sizeof(float)) != 0) {
      fail(path, ": lm_head.weight differs from model.embed_tokens.weight; this framework ties them "
           "(tie_word_embeddings), so a separate lm_head cannot be imported");
    }
    r.had_lm_head = true;
  }
  return r;
}

Config checkpoint_config(const std::string& checkpoint_path, const CheckpointMeta& meta) {
  if (meta.config.empty()) fail(checkpoint_path, ": holds no run configuration");
  return load_config_text(meta.config, checkpoint_path + " (its config)");
}

Config import_config(const std::string& hf_dir, const std::string& recipe) {
  const std::string json_path = (fs::path(hf_dir) / "config.json").string();
  std::vector<std::string> overrides =
      hf_model_overrides(model_config_from_hf(read_all_text(json_path), json_path));
  if (!recipe.empty()) {
    try {
      return load_config(recipe, overrides);
    } catch (const Error& e) {
      blame_config_json(e, json_path);
    }
  }
  overrides.push_back("data.format=shards");
  overrides.push_back("data.train=" + json_string(fs::absolute(hf_dir).string()));
  try {
    return load_config_text("", "(default recipe)", overrides);
  } catch (const Error& e) {
    blame_config_json(e, json_path);
  }
}

}  // namespace hymba
