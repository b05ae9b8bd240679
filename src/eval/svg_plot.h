// Training curves of several runs as one hand-written SVG (behind hymba-plot): four panels against
// the optimizer step (train and validation loss; learning rate; gradient norm; tokens/s), one
// colour per run, a legend of run names. No dependencies: the figure is plain SVG text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace hymba {

struct CurvePoint {
  double step, value;
};

// One run's metrics.jsonl, each curve in step order.
struct RunCurves {
  std::string name;  // the legend label: the run folder's name
  std::vector<CurvePoint> loss, val_loss, lr, grad_norm, tokens_per_sec;
};

// Parses metrics.jsonl text (`source` names it in errors). Every non-blank line must be a JSON
// object with an integer "step"; its members loss, val_loss, lr, grad_norm and tokens_per_sec
// must be numbers where present (a line may hold any subset), and other members are ignored. A
// step logged twice (a resumed run logs the steps after its checkpoint again) keeps the later
// value. A bad line is an Error naming the source and the line.
RunCurves parse_run_curves(std::string_view text, const std::string& source, std::string name);

// RUN_DIR/metrics.jsonl, named after the folder.
RunCurves read_run_curves(const std::string& run_dir);

// The whole SVG document. Runs with no points in a panel are left out of that panel only.
std::string render_training_svg(const std::vector<RunCurves>& runs);

}  // namespace hymba
