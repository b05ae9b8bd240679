// config.json of the official HF release (nvidia/Hymba-1.5B-Base, HYMBA_SPEC §4), from a
// ModelConfig and back.
//
// Writing gives every key of the official file under its official name, with the flags fixed at
// the values this framework implements (kq_norm "none", rope true, one expert, ...), laid out as
// transformers' save_pretrained writes it (json.dumps with indent 2 and sorted keys). Reading
// refuses, naming the key, every setting this framework cannot represent.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "io/safetensors.h"

namespace hymba {

// The config.json text for `c`, with torch_dtype naming `dtype` (the safetensors dtype). Only
// model.mixer hybrid has an official counterpart; other mixers are an Error.
std::string hf_config_json(const ModelConfig& c, StDtype dtype);

// The model a config.json describes. `source` names the file in errors. Keys that decide the
// model are required (HymbaConfig's own defaults differ from the release: HYMBA_SPEC §4); keys
// the official code never reads for the forward pass (use_cache, num_mamba, conv_dim, ...) are
// ignored. Fields config.json has no key for keep ModelConfig's defaults: the init choices
// (dt_init, dt_min, dt_max) and mixer (hybrid). The result is not yet validated as a whole
// (head counts dividing, KV groups being runs of layers): load_config does that.
ModelConfig model_config_from_hf(std::string_view json_text, const std::string& source);

// The model keys config.json decides, as load_config overrides ("model.hidden_size=1600", ...),
// plus model.mixer=hybrid: laid over a recipe file they give the imported model's full config.
std::vector<std::string> hf_model_overrides(const ModelConfig& c);

}  // namespace hymba
