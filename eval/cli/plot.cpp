// hymba-plot OUT.svg RUN_DIR [RUN_DIR ...]: the training curves of one or more runs in one SVG
// (train and validation loss, learning rate, gradient norm, tokens/s against the step), read from
// each RUN_DIR/metrics.jsonl, one colour per run, labelled with the run folder's name.
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "core/files.h"
#include "eval/svg_plot.h"

namespace {

const char* kUsage =
    "usage: hymba-plot OUT.svg RUN_DIR [RUN_DIR ...]\n"
    "  OUT.svg   the figure to write: loss (train solid, validation dashed), learning rate,\n"
    "            gradient norm and tokens/s against the step\n"
    "  RUN_DIR   a run folder (run.dir) holding metrics.jsonl; its name labels its curves\n";

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
  }
  if (args.size() < 2) {
    std::cerr << kUsage;
    return 2;
  }
  try {
    std::vector<hymba::RunCurves> runs;
    for (size_t i = 1; i < args.size(); ++i) runs.push_back(hymba::read_run_curves(args[i]));
    hymba::write_file_atomically(args[0], hymba::render_training_svg(runs));
    std::cout << "wrote " << args[0] << " (" << runs.size() << " run" << (runs.size() == 1 ? "" : "s")
              << ")\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
