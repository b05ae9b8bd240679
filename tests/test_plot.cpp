// hymba-plot's library (src/eval/svg_plot.h): reading metrics.jsonl (bad lines named by file and
// line, repeated steps), and the SVG: balanced tags, one polyline per run and curve with one point
// per logged step, axes with tick labels, run names escaped.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "core/error.h"
#include "eval/svg_plot.h"

namespace hymba::test {
namespace {

namespace fs = std::filesystem;

// "" when every tag is closed in order (<a/> closes itself; <?xml ...?> and comments are skipped)
// and there is one root; else what is wrong.
std::string tag_problem(const std::string& xml) {
  std::vector<std::string> open;
  int roots = 0;
  for (size_t at = xml.find('<'); at != std::string::npos; at = xml.find('<', at + 1)) {
    if (xml.compare(at, 2, "<?") == 0 || xml.compare(at, 4, "<!--") == 0) continue;
    const size_t end = xml.find('>', at);
    if (end == std::string::npos) return "unterminated tag at " + std::to_string(at);
    const std::string tag = xml.substr(at + 1, end - at - 1);
    if (std::count(tag.begin(), tag.end(), '"') % 2) return "unbalanced quotes in <" + tag + ">";
    const std::string name = tag.substr(tag[0] == '/', tag.find_first_of(" />", 1) - (tag[0] == '/'));
    if (tag[0] == '/') {
      if (open.empty() || open.back() != name) return "</" + name + "> closes nothing open";
      open.pop_back();
    } else if (tag.back() != '/') {
      roots += open.empty();
      open.push_back(name);
    } else {
      roots += open.empty();
    }
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  return roots == 1 ? "" : std::to_string(roots) + " root elements";
}

TEST(Plot, TagCheckerCatchesUnbalancedTags) {  // so that the checks below can fail
  EXPECT_EQ(tag_problem("<svg><g><line/></g></svg>"), "");
  EXPECT_NE(tag_problem("<svg><g></svg>"), "");
  EXPECT_NE(tag_problem("<svg><g/></svg><svg></svg>"), "");
  EXPECT_NE(tag_problem("<svg><text x=\"1>a</text></svg>"), "");
}

// Attributes of every <polyline>, by (data-run, data-curve).
std::map<std::pair<std::string, std::string>, std::map<std::string, std::string>> polylines(
    const std::string& svg) {
  std::map<std::pair<std::string, std::string>, std::map<std::string, std::string>> out;
  const std::regex element("<polyline ([^>]*)/>"), attribute("([a-z-]+)=\"([^\"]*)\"");
  for (auto e = std::sregex_iterator(svg.begin(), svg.end(), element); e != std::sregex_iterator(); ++e) {
    std::map<std::string, std::string> attrs;
    const std::string body = (*e)[1];
    for (auto a = std::sregex_iterator(body.begin(), body.end(), attribute); a != std::sregex_iterator(); ++a)
      attrs[(*a)[1]] = (*a)[2];
    EXPECT_TRUE(out.emplace(std::pair(attrs["data-run"], attrs["data-curve"]), attrs).second)
        << "two polylines for " << attrs["data-run"] << " " << attrs["data-curve"];
  }
  return out;
}

size_t point_count(const std::string& points) {
  const std::regex pair("-?[0-9.]+,-?[0-9.]+");
  return std::distance(std::sregex_iterator(points.begin(), points.end(), pair), std::sregex_iterator());
}

// A run logging `steps` steps every 10 (as hymba-train writes them), with a validation line every
// `val_every` steps.
std::string metrics_text(int steps, int val_every) {
  std::string text;
  for (int s = 10; s <= steps; s += 10) {
    text += "{\"step\": " + std::to_string(s) + ", \"loss\": " + std::to_string(8.0 - s * 0.01) +
            ", \"lr\": 0.0003, \"grad_norm\": 0.5, \"tokens_per_sec\": 12000, \"tokens\": 5120, "
            "\"elapsed_s\": 1.5}\n";
    if (s % val_every == 0) text += "{\"step\": " + std::to_string(s) + ", \"val_loss\": 7.5}\n";
  }
  return text;
}

TEST(Plot, OnePolylinePerRunAndCurveWithAPointPerStep) {
  const std::vector<RunCurves> runs = {parse_run_curves(metrics_text(200, 50), "a.jsonl", "run-a"),
                                       parse_run_curves(metrics_text(70, 1000), "b.jsonl", "run-b")};
  const std::string svg = render_training_svg(runs);
  EXPECT_EQ(tag_problem(svg), "");
  const auto lines = polylines(svg);
  const std::map<std::pair<std::string, std::string>, size_t> want = {
      {{"run-a", "loss"}, 20}, {{"run-a", "loss-val"}, 4}, {{"run-a", "lr"}, 20},
      {{"run-a", "grad_norm"}, 20}, {{"run-a", "tokens_per_sec"}, 20},
      {{"run-b", "loss"}, 7}, {{"run-b", "lr"}, 7},  // run-b has no validation line
      {{"run-b", "grad_norm"}, 7}, {{"run-b", "tokens_per_sec"}, 7}};
  ASSERT_EQ(lines.size(), want.size());
  for (const auto& [key, count] : want) {
    SCOPED_TRACE(key.first + " " + key.second);
    ASSERT_TRUE(lines.count(key));
    EXPECT_EQ(point_count(lines.at(key).at("points")), count);
  }
  // One colour per run, the same in every panel; the validation curve dashed.
  EXPECT_EQ(lines.at({"run-a", "loss"}).at("stroke"), lines.at({"run-a", "lr"}).at("stroke"));
  EXPECT_NE(lines.at({"run-a", "loss"}).at("stroke"), lines.at({"run-b", "loss"}).at("stroke"));
  EXPECT_TRUE(lines.at({"run-a", "loss-val"}).count("stroke-dasharray"));
  EXPECT_FALSE(lines.at({"run-a", "loss"}).count("stroke-dasharray"));
}

TEST(Plot, HasPanelsAxesTicksAndALegend) {
  const std::string svg = render_training_svg({parse_run_curves(metrics_text(2000, 100), "a", "hybrid")});
  for (const char* title : {">Loss (", ">Learning rate<", ">Gradient norm", ">Throughput<"})
    EXPECT_NE(svg.find(title), std::string::npos) << title;
  for (const char* label : {">loss<", ">learning rate<", ">gradient norm<", ">tokens/s<"})
    EXPECT_NE(svg.find(label), std::string::npos) << label;
  // Steps 10..2000: x ticks every 500 from 0, labelled under each of the four panels.
  for (const char* tick : {">0<", ">500<", ">1000<", ">1500<", ">2000<"}) {
    size_t n = 0;
    for (size_t at = svg.find(tick); at != std::string::npos; at = svg.find(tick, at + 1)) ++n;
    EXPECT_GE(n, 4u) << tick;
  }
  size_t step_labels = 0;
  for (size_t at = svg.find(">step<"); at != std::string::npos; at = svg.find(">step<", at + 1)) ++step_labels;
  EXPECT_EQ(step_labels, 4u);
  EXPECT_NE(svg.find("<g class=\"legend\">"), std::string::npos);
  EXPECT_NE(svg.find(">hybrid</text>"), std::string::npos);
}

TEST(Plot, RunNamesAreEscaped) {
  const std::string svg = render_training_svg({parse_run_curves(metrics_text(30, 10), "x", "a<b & \"c\"")});
  EXPECT_EQ(tag_problem(svg), "");
  EXPECT_NE(svg.find(">a&lt;b &amp; &quot;c&quot;</text>"), std::string::npos);
}

TEST(Plot, ARepeatedStepKeepsTheLaterValueAndStepsAreSorted) {
  // A resumed run logs the steps after its checkpoint again.
  const RunCurves r = parse_run_curves(
      "{\"step\": 20, \"loss\": 5}\n{\"step\": 30, \"loss\": 4}\n{\"step\": 20, \"loss\": 4.5}\n\n", "m", "r");
  ASSERT_EQ(r.loss.size(), 2u);
  EXPECT_EQ(r.loss[0].step, 20);
  EXPECT_EQ(r.loss[0].value, 4.5);
  EXPECT_EQ(r.loss[1].step, 30);
  EXPECT_TRUE(r.val_loss.empty());
}

std::string error_of(const std::string& text) {
  try {
    parse_run_curves(text, "runs/x/metrics.jsonl", "x");
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST(Plot, MalformedLinesAreNamedByFileAndLine) {
  const std::string good = "{\"step\": 10, \"loss\": 5.0}\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {good + "{\"step\": 20, \"loss\": }\n", "runs/x/metrics.jsonl: line 2"},      // not JSON
      {good + good + "[1, 2]\n", "runs/x/metrics.jsonl: line 3: expected a JSON object"},
      {"{\"loss\": 5.0}\n", "runs/x/metrics.jsonl: line 1: \"step\" must be an integer"},
      {good + "{\"step\": 2.5}\n", "runs/x/metrics.jsonl: line 2: \"step\" must be an integer"},
      {good + "\n{\"step\": 30, \"lr\": \"high\"}\n", "runs/x/metrics.jsonl: line 3: \"lr\" must be a number"},
      {good + "{\"step\": 20, \"loss\": nan}\n", "runs/x/metrics.jsonl: line 2"},  // a diverged run
  };
  for (const auto& [text, want] : cases) EXPECT_NE(error_of(text).find(want), std::string::npos) << error_of(text);
}

TEST(Plot, ReadsARunFolderNamedAfterIt) {
  const fs::path dir = fs::path(testing::TempDir()) / ("plot-" + std::to_string(::getpid())) / "my-run";
  fs::create_directories(dir);
  std::ofstream(dir / "metrics.jsonl") << metrics_text(30, 10);
  for (const std::string& given : {dir.string(), dir.string() + "/"}) {
    const RunCurves r = read_run_curves(given);
    EXPECT_EQ(r.name, "my-run") << given;
    EXPECT_EQ(r.loss.size(), 3u);
    EXPECT_EQ(r.val_loss.size(), 3u);
  }
  fs::remove(dir / "metrics.jsonl");
  try {
    read_run_curves(dir.string());
    ADD_FAILURE() << "no error for a folder without metrics.jsonl";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find((dir / "metrics.jsonl").string()), std::string::npos) << e.what();
  }
  fs::remove_all(dir.parent_path());
}

}  // namespace
}  // namespace hymba::test
