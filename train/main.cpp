// hymba-train CONFIG [section.key=value ...] [--info]
//   Trains the model a YAML config describes (see configs/ and README.md), or with --info prints
//   the model summary: parameters per tensor kind, activation memory and FLOPs per token.
//   Under `mpirun -np N` every rank runs this, as one data-parallel job (trainer.h).
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/cli.h"
#include "core/error.h"
#include "model/model_info.h"
#include "trainer/memory_plan.h"
#include "parallel/process_group.h"
#include "trainer/trainer.h"

namespace {

const char* kUsage =
    "usage: hymba-train CONFIG [section.key=value ...] [--info]\n"
    "  CONFIG           a YAML file, e.g. configs/tiny.yaml\n"
    "  section.key=val  override any config key, e.g. train.steps=50 run.dir=runs/try1\n"
    "  --info           print the model summary (parameters, memory, FLOPs) and exit\n";

}  // namespace

int main(int argc, char** argv) {
  hymba::ProcessGroup group = hymba::ProcessGroup::from_environment(&argc, &argv);
  std::string config_path;
  std::vector<std::string> overrides;
  bool info = false;
  hymba::CommandLine cl(argc, argv, kUsage);
  for (std::string arg; cl.next(arg);) {
    if (arg == "--info") {
      info = true;
    } else if (arg.starts_with("--")) {
      cl.unknown(arg);
    } else if (config_path.empty()) {
      config_path = arg;
    } else {
      overrides.push_back(arg);
    }
  }
  if (config_path.empty()) cl.usage_error("CONFIG is required");
  try {
    const hymba::Config cfg = hymba::load_config(config_path, overrides);
    if (info) {
      if (group.rank() == 0) {
        std::cout << "config: " << cfg.path << "\n"
                  << hymba::format_model_info(hymba::describe_model(cfg.model, cfg.train.seq_len))
                  << hymba::describe_training_memory(cfg);
      }
      return 0;
    }
    hymba::train(cfg, group, std::cout);
  } catch (const std::exception& e) {
    // Under mpirun the other ranks would wait for this one in their next collective: end the job.
    if (group.uses_mpi()) group.abort(e.what());
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
