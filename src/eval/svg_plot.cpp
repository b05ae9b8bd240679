#include "eval/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <map>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"

namespace hymba {

// ---- reading metrics.jsonl ----------------------------------------------------------------------

namespace {

// The members plotted and the curve each fills.
struct Member {
  const char* key;
  std::vector<CurvePoint> RunCurves::*curve;
};
const Member kMembers[] = {{"loss", &RunCurves::loss},
                           {"val_loss", &RunCurves::val_loss},
                           {"lr", &RunCurves::lr},
                           {"grad_norm", &RunCurves::grad_norm},
                           {"tokens_per_sec", &RunCurves::tokens_per_sec}};
constexpr size_t kNumMembers = std::size(kMembers);

using ByStep = std::map<int64_t, double>;  // sorted by step; a later line replaces an earlier one

void read_line(std::string_view line, const JsonSource& at, ByStep (&curves)[kNumMembers]) {
  const JsonValue record = parse_json(line, at);  // a syntax error names the source and line
  const auto bad = [&](const auto&... what) { fail(at.name, ": line ", at.first_line, ": ", what...); };
  if (record.type() != JsonValue::Type::object) bad("expected a JSON object");
  const JsonValue* step = record.find("step");
  if (!step || !step->is_integer()) bad("\"step\" must be an integer");
  for (size_t m = 0; m < kNumMembers; ++m) {
    const JsonValue* v = record.find(kMembers[m].key);
    if (!v) continue;
    if (v->type() != JsonValue::Type::number) bad("\"", kMembers[m].key, "\" must be a number");
    curves[m][step->as_int()] = v->as_number();
  }
}

}  // namespace

RunCurves parse_run_curves(std::string_view text, const std::string& source, std::string name) {
  ByStep curves[kNumMembers];
  int64_t line_number = 0;
  for (size_t start = 0; start < text.size();) {
    const size_t end = std::min(text.find('\n', start), text.size());
    const std::string_view line = text.substr(start, end - start);
    ++line_number;
    if (line.find_first_not_of(" \t\r") != std::string_view::npos)
      read_line(line, JsonSource{source, line_number, int64_t(start)}, curves);
    start = end + 1;
  }
  RunCurves run;
  run.name = std::move(name);
  for (size_t m = 0; m < kNumMembers; ++m)
    for (const auto& [step, value] : curves[m])
      (run.*kMembers[m].curve).push_back({double(step), value});
  return run;
}

RunCurves read_run_curves(const std::string& run_dir) {
  std::filesystem::path dir(run_dir);
  if (!dir.has_filename()) dir = dir.parent_path();  // "runs/a/" names the run "a"
  const std::string path = (dir / "metrics.jsonl").string();
  return parse_run_curves(read_all_text(path), path, dir.filename().string());
}

// ---- drawing ------------------------------------------------------------------------------------

namespace {

// Tableau 10: distinct hues that stay apart for colour-blind readers; runs beyond 10 cycle.
const char* const kColours[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};

const char* colour(size_t run) { return kColours[run % std::size(kColours)]; }

// Figure geometry in px. Each of the 2 × 2 cells holds a panel: title on top, y tick labels and
// the y label on the left, x tick labels and "step" below.
constexpr double kCellW = 500, kCellH = 310, kMargin = 10, kWidth = 2 * kCellW + 2 * kMargin;
constexpr double kLeft = 74, kRight = 18, kTop = 34, kBottom = 46;
constexpr double kPlotW = kCellW - kLeft - kRight, kPlotH = kCellH - kTop - kBottom;
constexpr double kCharW = 7;  // rough width of a 12 px sans-serif character, for the legend

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string px(double v) { return fixed(v, 1); }

std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// An axis from lo to hi with ticks at the multiples of `step` in between.
struct Axis {
  double lo, hi, step;
  double to_unit(double v) const { return (v - lo) / (hi - lo); }
};

// The axis over the data's range [lo, hi] widened by `pad` of it on each side, so that no curve
// runs along the frame, with a round step (1, 2 or 5 times a power of ten) that gives about
// `target` intervals.
Axis nice_axis(double lo, double hi, int target, double pad) {
  if (!(hi > lo)) {  // one value: open a range around it (upwards from 0)
    const double open = lo == 0 ? 1 : std::abs(lo) * 0.1;
    if (lo != 0) lo -= open;
    hi += open;
  }
  const double margin = pad * (hi - lo);
  lo -= margin, hi += margin;
  const double raw = (hi - lo) / target;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;  // the round number nearest raw, by ratio
  for (double m : {2.0, 5.0, 10.0})
    if (std::abs(std::log(m * power / raw)) < std::abs(std::log(step / raw))) step = m * power;
  return {lo, hi, step};
}

// Tick labels: as many decimals as the step needs; thousands as k or M (tokens/s); small values
// as 2.5e-4 (learning rates), the mantissa with no trailing zeros.
std::string tick_label(double v, double step) {
  if (std::abs(v) < step * 1e-6) return "0";
  const auto decimals = [](double unit) {
    return std::max(0, int(-std::floor(std::log10(unit) + 1e-9)));
  };
  if (step >= 1e6) return fixed(v / 1e6, decimals(step / 1e6)) + "M";
  if (step >= 1e3) return fixed(v / 1e3, decimals(step / 1e3)) + "k";
  if (step >= 1e-3) return fixed(v, decimals(step));
  const int e = int(std::floor(std::log10(std::abs(v)) + 1e-9));
  std::string mantissa = fixed(v / std::pow(10.0, e), decimals(step / std::pow(10.0, e)));
  if (mantissa.find('.') != std::string::npos) {
    mantissa.erase(mantissa.find_last_not_of('0') + 1);
    if (mantissa.back() == '.') mantissa.pop_back();
  }
  return mantissa + "e" + std::to_string(e);
}

struct Curve {
  size_t run;
  const std::vector<CurvePoint>* points;
  bool dashed;  // validation loss
};

constexpr double kFitFrom = 0.2;

struct Panel {
  std::string title, y_label, key;  // key names the panel in the SVG (data-panel)
  std::vector<Curve> curves;
  // Fit the y axis to the curves after the first kFitFrom of the steps: the start (loss falling
  // from ln V, the first steps' gradient norms and speed) would squeeze what is compared, the
  // later curves, into a sliver. What lies outside is clipped at the plot's edge.
  bool fit_later_steps;
};

// The y range of a panel's curves at steps from `from` on (all of them if none are there).
// [0, 1] for a panel without curves.
std::pair<double, double> value_range(const Panel& p, double from) {
  double lo = INFINITY, hi = -INFINITY;
  for (bool all : {false, true}) {
    for (const Curve& c : p.curves)
      for (const CurvePoint& q : *c.points)
        if (all || q.step >= from) lo = std::min(lo, q.value), hi = std::max(hi, q.value);
    if (lo <= hi) return {lo, hi};
  }
  return {0, 1};
}

// The figure: appends SVG elements to `out`.
class Figure {
 public:
  Figure(const std::vector<RunCurves>& runs, Axis x) : runs_(runs), x_(x) {}

  double legend_height() const { return legend_positions().back().second + 12 - kMargin; }

  void legend(std::string& out) const {
    out += "<g class=\"legend\">\n";
    const auto at = legend_positions();
    for (size_t r = 0; r < runs_.size(); ++r) {
      const auto [x, y] = at[r];
      out += "<line x1=\"" + px(x) + "\" y1=\"" + px(y - 4) + "\" x2=\"" + px(x + 20) + "\" y2=\"" +
             px(y - 4) + "\" stroke=\"" + colour(r) + "\" stroke-width=\"3\"/>\n";
      out += "<text x=\"" + px(x + 26) + "\" y=\"" + px(y) + "\">" + escape_xml(runs_[r].name) +
             "</text>\n";
    }
    out += "</g>\n";
  }

  void panel(std::string& out, const Panel& p, double left, double top, int index) const {
    const double x0 = left + kLeft, y0 = top + kTop;  // the plot area's top-left corner
    const double from = x_.lo + kFitFrom * (x_.hi - x_.lo);
    const auto [lo, hi] = value_range(p, p.fit_later_steps ? from : x_.lo);
    const Axis y = nice_axis(lo, hi, 5, 0.04);
    const auto sx = [&](double v) { return x0 + x_.to_unit(v) * kPlotW; };
    const auto sy = [&](double v) { return y0 + (1 - y.to_unit(v)) * kPlotH; };
    const std::string clip = "plot" + std::to_string(index);

    out += "<g class=\"panel\" data-panel=\"" + p.key + "\">\n";
    out += "<defs><clipPath id=\"" + clip + "\"><rect x=\"" + px(x0) + "\" y=\"" + px(y0) +
           "\" width=\"" + px(kPlotW) + "\" height=\"" + px(kPlotH) + "\"/></clipPath></defs>\n";
    out += "<text x=\"" + px(x0 + kPlotW / 2) + "\" y=\"" + px(top + 20) +
           "\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">" + escape_xml(p.title) +
           "</text>\n";
    grid_and_ticks(out, x_, /*vertical=*/true, x0, y0, sx);
    grid_and_ticks(out, y, /*vertical=*/false, x0, y0, sy);
    out += "<rect x=\"" + px(x0) + "\" y=\"" + px(y0) + "\" width=\"" + px(kPlotW) + "\" height=\"" +
           px(kPlotH) + "\" fill=\"none\" stroke=\"#333\"/>\n";
    out += "<text x=\"" + px(x0 + kPlotW / 2) + "\" y=\"" + px(y0 + kPlotH + 38) +
           "\" text-anchor=\"middle\">step</text>\n";
    const double ly = y0 + kPlotH / 2, lx = left + 16;
    out += "<text x=\"" + px(lx) + "\" y=\"" + px(ly) + "\" text-anchor=\"middle\"" +
           " transform=\"rotate(-90 " + px(lx) + " " + px(ly) + ")\">" + escape_xml(p.y_label) +
           "</text>\n";
    out += "<g clip-path=\"url(#" + clip + ")\">\n";
    for (const Curve& c : p.curves) curve(out, p.key, c, sx, sy);
    out += "</g>\n</g>\n";
  }

 private:
  // Where each legend entry (a colour swatch and the run's name) starts, in rows that wrap at the
  // figure's width, plus one more position: where the next entry would go.
  std::vector<std::pair<double, double>> legend_positions() const {
    std::vector<std::pair<double, double>> at;
    const double start = kMargin + 8;
    double x = start, y = kMargin + 14;
    for (const RunCurves& run : runs_) {
      const double w = 48 + kCharW * double(run.name.size());
      if (x + w > kWidth - kMargin && x > start) x = start, y += 20;
      at.emplace_back(x, y);
      x += w;
    }
    at.emplace_back(x, y);
    return at;
  }

  // Grid lines with their tick labels: vertical ones (the x axis) labelled below the plot,
  // horizontal ones (the y axis) labelled on its left.
  template <class Scale>
  static void grid_and_ticks(std::string& out, const Axis& a, bool vertical, double x0, double y0,
                             const Scale& scale) {
    for (double i = std::ceil(a.lo / a.step - 1e-6);; ++i) {
      const double v = i * a.step;
      if (v > a.hi + a.step * 1e-6) break;
      const double at = scale(v);
      const std::string label = escape_xml(tick_label(v, a.step));
      if (vertical) {
        out += "<line x1=\"" + px(at) + "\" y1=\"" + px(y0) + "\" x2=\"" + px(at) + "\" y2=\"" +
               px(y0 + kPlotH + 4) + "\" stroke=\"#ddd\"/>\n";
        out += "<text x=\"" + px(at) + "\" y=\"" + px(y0 + kPlotH + 18) +
               "\" text-anchor=\"middle\">" + label + "</text>\n";
      } else {
        out += "<line x1=\"" + px(x0 - 4) + "\" y1=\"" + px(at) + "\" x2=\"" + px(x0 + kPlotW) +
               "\" y2=\"" + px(at) + "\" stroke=\"#ddd\"/>\n";
        out += "<text x=\"" + px(x0 - 7) + "\" y=\"" + px(at + 4) + "\" text-anchor=\"end\">" + label +
               "</text>\n";
      }
    }
  }

  // A polyline, plus a dot per point for the sparse validation curve.
  template <class ScaleX, class ScaleY>
  void curve(std::string& out, const std::string& panel, const Curve& c, const ScaleX& sx,
             const ScaleY& sy) const {
    std::string points;
    for (const CurvePoint& q : *c.points) {
      if (!points.empty()) points += ' ';
      points += px(sx(q.step)) + "," + px(sy(q.value));
    }
    const std::string name = escape_xml(runs_[c.run].name);
    out += "<polyline data-run=\"" + name + "\" data-curve=\"" + panel + (c.dashed ? "-val" : "") +
           "\" fill=\"none\" stroke=\"" + colour(c.run) + "\" stroke-width=\"1.5\"" +
           (c.dashed ? " stroke-dasharray=\"6 3\"" : "") + " points=\"" + points + "\"/>\n";
    if (!c.dashed) return;
    for (const CurvePoint& q : *c.points)
      out += "<circle cx=\"" + px(sx(q.step)) + "\" cy=\"" + px(sy(q.value)) + "\" r=\"2.5\" fill=\"" +
             colour(c.run) + "\"/>\n";
  }

  const std::vector<RunCurves>& runs_;
  Axis x_;
};

std::vector<Panel> training_panels(const std::vector<RunCurves>& runs) {
  std::vector<Panel> panels = {
      {"Loss (solid: train, dashed: validation)", "loss", "loss", {}, true},
      {"Learning rate", "learning rate", "lr", {}, false},  // warmup from 0 is the point
      {"Gradient norm (before clipping)", "gradient norm", "grad_norm", {}, true},
      {"Throughput", "tokens/s", "tokens_per_sec", {}, true},
  };
  const auto add = [](Panel& p, size_t run, const std::vector<CurvePoint>& points, bool dashed) {
    if (!points.empty()) p.curves.push_back({run, &points, dashed});
  };
  for (size_t r = 0; r < runs.size(); ++r) {
    add(panels[0], r, runs[r].loss, false);
    add(panels[0], r, runs[r].val_loss, true);
    add(panels[1], r, runs[r].lr, false);
    add(panels[2], r, runs[r].grad_norm, false);
    add(panels[3], r, runs[r].tokens_per_sec, false);
  }
  return panels;
}

// The step axis, shared by all panels so they line up: from 0 to the last step of any run.
Axis step_axis(const std::vector<Panel>& panels) {
  double lo = 0, hi = 0;
  for (const Panel& p : panels)
    for (const Curve& c : p.curves)
      for (const CurvePoint& q : *c.points) lo = std::min(lo, q.step), hi = std::max(hi, q.step);
  return nice_axis(lo, hi, 5, 0);
}

}  // namespace

std::string render_training_svg(const std::vector<RunCurves>& runs) {
  const std::vector<Panel> panels = training_panels(runs);
  const Figure figure(runs, step_axis(panels));
  const double top = kMargin + figure.legend_height();
  const double height = top + 2 * kCellH + kMargin;
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + px(kWidth) + "\" height=\"" +
         px(height) + "\" viewBox=\"0 0 " + px(kWidth) + " " + px(height) +
         "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n";
  out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  figure.legend(out);
  for (size_t i = 0; i < panels.size(); ++i) {  // 2 × 2, row by row
    const double left = kMargin + double(i % 2) * kCellW, cell_top = top + double(i / 2) * kCellH;
    figure.panel(out, panels[i], left, cell_top, int(i));
  }
  out += "</svg>\n";
  return out;
}

}  // namespace hymba
