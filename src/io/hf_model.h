// A model folder in the official HF format (what hymba-export writes and hymba-import reads):
//
//   <dir>/model.safetensors   every parameter under its HF state_dict name and shape
//                             (HYMBA_SPEC §3); lm_head.weight is left out, as in the release,
//                             because tie_word_embeddings makes it the embedding
//   <dir>/config.json         the official configuration (io/hf_config.h)
//
// The official modeling code (modeling_hymba.py, configuration_hymba.py) is not part of the
// folder; transformers' from_pretrained(dir, trust_remote_code=True) needs it copied in.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "io/checkpoint.h"
#include "io/safetensors.h"
#include "model/param_layout.h"

namespace hymba {

// The (name, shape) of every tensor model.safetensors holds for this layout. Needs no tensor
// data, so the export of the 1.5B model can be checked without allocating it.
std::vector<std::pair<std::string, std::vector<int64_t>>> hf_tensor_shapes(const ParamLayout& layout);

struct HfWritten {
  std::string safetensors_path, config_path;
  int64_t tensors = 0;
  uint64_t safetensors_bytes = 0;
};

// Writes dir/model.safetensors (tensors in `dtype`) and dir/config.json, creating dir. `params`
// is a flat buffer with `layout`, which must be build_param_layout(c, plan_layers(c)).
HfWritten write_hf_model(const std::string& dir, const ModelConfig& c, const ParamLayout& layout,
                         const float* params, StDtype dtype);

struct HfRead {
  int64_t f32_tensors = 0, bf16_tensors = 0;  // by their dtype in the file
  bool had_lm_head = false;                   // present, and equal to the embedding
};

// Reads a model.safetensors into `params` (a zero-filled flat buffer with `layout`). Every
// tensor of the layout must be there with its exact shape, in F32 or BF16; a tensor the layout
// does not have is an error, except lm_head.weight when it equals the embedding bit for bit
// (the model is tied: a different lm_head cannot be represented). Errors name the file and the
// tensor.
HfRead read_hf_weights(const std::string& path, const ParamLayout& layout, float* params);

// The run configuration a checkpoint carries (CheckpointMeta::config), loaded and validated as
// load_config does. `checkpoint_path` names the file in errors.
Config checkpoint_config(const std::string& checkpoint_path, const CheckpointMeta& meta);

// The configuration of a model imported from hf_dir: the model keys from hf_dir/config.json laid
// over `recipe` (a config file for the other sections; empty = the defaults). The defaults name no
// training corpus, and a config must, so without a recipe data.train names hf_dir itself as
// prepared shards (format shards): a placeholder to override (data.train=...) before training.
Config import_config(const std::string& hf_dir, const std::string& recipe);

}  // namespace hymba
