// hymba-import HF_DIR OUT_CHECKPOINT [CONFIG]
//   Reads a model in the official HF format (HF_DIR/config.json + HF_DIR/model.safetensors, F32
//   or BF16) into a checkpoint at step 0 without optimizer state, which hymba-train
//   (train.resume=OUT_CHECKPOINT) and hymba-eval take like any other. See io/hf_model.h.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/cli.h"
#include "io/checkpoint.h"
#include "io/hf_model.h"
#include "model/layer_plan.h"
#include "model/param_layout.h"

namespace {

const char* kUsage =
    "usage: hymba-import HF_DIR OUT_CHECKPOINT [CONFIG]\n"
    "  HF_DIR          folder with config.json and model.safetensors (F32 or BF16)\n"
    "  OUT_CHECKPOINT  checkpoint file to write (step 0, no optimizer state)\n"
    "  CONFIG          YAML config for everything but the model (the training recipe and data);\n"
    "                  its model keys are replaced by config.json's. Without it the defaults apply,\n"
    "                  and data.train names HF_DIR as a placeholder to override before training.\n"
    "To train on: hymba-train CONFIG train.resume=OUT_CHECKPOINT (CONFIG's model must match).\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  hymba::CommandLine cl(argc, argv, kUsage);
  for (std::string arg; cl.next(arg);) {
    if (arg.size() > 1 && arg.starts_with("--")) cl.unknown(arg);
    positional.push_back(arg);
  }
  if (positional.size() < 2 || positional.size() > 3) cl.usage_error("expected HF_DIR OUT_CHECKPOINT [CONFIG]");
  const std::string& hf_dir = positional[0];
  const std::string& out = positional[1];
  const std::string recipe = positional.size() == 3 ? positional[2] : "";
  try {
    const hymba::Config cfg = hymba::import_config(hf_dir, recipe);
    const hymba::ParamLayout layout = hymba::build_param_layout(cfg.model, hymba::plan_layers(cfg.model));
    std::vector<float> params(size_t(layout.storage), 0.0f);  // the padding between tensors stays zero
    const std::string weights = (std::filesystem::path(hf_dir) / "model.safetensors").string();
    const hymba::HfRead r = hymba::read_hf_weights(weights, layout, params.data());

    hymba::CheckpointMeta meta;
    meta.seed = cfg.train.seed;
    meta.config = cfg.resolved;
    hymba::save_checkpoint(out, layout, {params.data(), nullptr, nullptr}, meta);
    std::printf("read %s: %lld tensors (%lld F32, %lld BF16)%s, %lld parameters\n", weights.c_str(),
                static_cast<long long>(r.f32_tensors + r.bf16_tensors),
                static_cast<long long>(r.f32_tensors), static_cast<long long>(r.bf16_tensors),
                r.had_lm_head ? " + lm_head.weight (tied, equal)" : "", static_cast<long long>(layout.count));
    std::printf("config: model from %s/config.json, the rest from %s\n", hf_dir.c_str(),
                recipe.empty() ? "the defaults" : recipe.c_str());
    std::printf("wrote %s (step 0, no optimizer state)\n", out.c_str());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
