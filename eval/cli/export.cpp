// hymba-export CHECKPOINT OUT_DIR [--dtype bf16|fp32]
//   Writes a training checkpoint in the official HF format: OUT_DIR/model.safetensors (every
//   parameter under its HF name and shape; lm_head is tied and left out, as in the release) and
//   OUT_DIR/config.json (the official keys and values). See io/hf_model.h.
#include <cstdio>
#include <exception>
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
    "usage: hymba-export CHECKPOINT OUT_DIR [--dtype bf16|fp32]\n"
    "  CHECKPOINT      a checkpoint file (run.dir/checkpoint-NNNNNNNN.h5)\n"
    "  OUT_DIR         folder to write model.safetensors and config.json into (created if needed)\n"
    "  --dtype D       bf16 (default: as the released checkpoint, every tensor rounded to nearest\n"
    "                  even) or fp32 (the master weights exactly)\n"
    "Loading it in PyTorch needs the official modeling_hymba.py and configuration_hymba.py\n"
    "copied into OUT_DIR (they are not shipped here), then\n"
    "AutoModelForCausalLM.from_pretrained(OUT_DIR, trust_remote_code=True).\n";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> positional;
  hymba::StDtype dtype = hymba::StDtype::bf16;
  hymba::CommandLine cl(argc, argv, kUsage);
  for (std::string arg; cl.next(arg);) {
    if (arg == "--dtype") {
      const std::string d = cl.value();
      if (d == "bf16") dtype = hymba::StDtype::bf16;
      else if (d == "fp32") dtype = hymba::StDtype::f32;
      else cl.usage_error("--dtype " + d + ": must be bf16 or fp32");
    } else if (arg.size() > 1 && arg.starts_with("--")) {
      cl.unknown(arg);
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 2) cl.usage_error("expected CHECKPOINT and OUT_DIR");
  const std::string& checkpoint = positional[0];
  const std::string& out_dir = positional[1];
  try {
    const hymba::CheckpointMeta meta = hymba::read_checkpoint_meta(checkpoint);
    const hymba::Config cfg = hymba::checkpoint_config(checkpoint, meta);
    const hymba::ParamLayout layout = hymba::build_param_layout(cfg.model, hymba::plan_layers(cfg.model));
    std::vector<float> params(size_t(layout.storage));
    hymba::load_checkpoint(checkpoint, layout, params.data(), nullptr, nullptr);
    const hymba::HfWritten w = hymba::write_hf_model(out_dir, cfg.model, layout, params.data(), dtype);
    std::printf("checkpoint: %s (step %lld)\n", checkpoint.c_str(), static_cast<long long>(meta.step));
    std::printf("wrote %s: %lld tensors, %lld parameters in %s, %llu bytes (lm_head tied: left out)\n",
                w.safetensors_path.c_str(), static_cast<long long>(w.tensors),
                static_cast<long long>(layout.count), hymba::st_dtype_name(dtype),
                static_cast<unsigned long long>(w.safetensors_bytes));
    std::printf("wrote %s\n", w.config_path.c_str());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
