// hymba-train CONFIG [section.key=value ...] [--info]
//   Trains the model a YAML config describes (see configs/ and README.md), or with --info prints
//   the model summary: parameters per tensor kind, activation memory and FLOPs per token.
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "model/model_info.h"
#include "trainer/trainer.h"

namespace {

const char* kUsage =
    "usage: hymba-train CONFIG [section.key=value ...] [--info]\n"
    "  CONFIG           a YAML file, e.g. configs/tiny.yaml\n"
    "  section.key=val  override any config key, e.g. train.steps=50 run.dir=runs/try1\n"
    "  --info           print the model summary (parameters, memory, FLOPs) and exit\n";

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  std::vector<std::string> overrides;
  bool info = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--info") {
      info = true;
    } else if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    } else if (arg.rfind("--", 0) == 0) {
      std::cerr << "error: unknown option " << arg << "\n" << kUsage;
      return 2;
    } else if (config_path.empty()) {
      config_path = arg;
    } else {
      overrides.push_back(arg);
    }
  }
  if (config_path.empty()) {
    std::cerr << kUsage;
    return 2;
  }
  try {
    const hymba::Config cfg = hymba::load_config(config_path, overrides);
    if (info) {
      std::cout << "config: " << cfg.path << "\n"
                << hymba::format_model_info(hymba::describe_model(cfg.model, cfg.train.seq_len));
      return 0;
    }
    hymba::train(cfg, std::cout);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
