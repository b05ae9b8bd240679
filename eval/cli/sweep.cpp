// hymba-sweep --out DIR [--set section.key=value ...] [--recall-steps N] CONFIG...
//   Runs an ablation sweep: for each config, a language-model run on its corpus and a second run
//   of the same model on the associative-recall task (data.format recall), then writes one table
//   (DIR/table.md and DIR/table.csv) of parameters, tokens/s, final train/val loss and recall
//   accuracy. Runs live in DIR/<config name> and DIR/<config name>-recall. The table is rewritten
//   after every config, so an interrupted sweep keeps what it finished.
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/cli.h"
#include "core/files.h"
#include "model/model_info.h"
#include "trainer/trainer.h"

namespace {

namespace fs = std::filesystem;

const char* kUsage =
    "usage: hymba-sweep --out DIR [--set section.key=value ...] [--recall-steps N] CONFIG...\n"
    "  CONFIG            configs to compare, e.g. configs/ablations/{hybrid,mamba-only}.yaml\n"
    "                    (ablation-base.yaml is their common base, not a comparison)\n"
    "  --out DIR         where the runs and table.md / table.csv go (must not hold these runs yet)\n"
    "  --set K=V         an override applied to every run, e.g. --set train.steps=100\n"
    "  --recall-steps N  steps of each recall run (default: the config's train.steps; 0 = skip)\n";

struct Row {
  std::string name;
  int64_t parameters = 0;
  double tokens_per_sec = 0, train_loss = 0, val_loss = -1, recall_accuracy = -1;
};

std::string cell(double v, const char* format) {
  if (v < 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

void write_tables(const fs::path& out, const std::vector<Row>& rows) {
  std::ostringstream md, csv;
  md << "| config | parameters | tokens/s | train loss | val loss | recall accuracy |\n"
     << "|---|---:|---:|---:|---:|---:|\n";
  csv << "config,parameters,tokens_per_sec,train_loss,val_loss,recall_accuracy\n";
  for (const Row& r : rows) {
    md << "| " << r.name << " | " << r.parameters << " | " << cell(r.tokens_per_sec, "%.0f") << " | "
       << cell(r.train_loss, "%.4f") << " | " << cell(r.val_loss, "%.4f") << " | "
       << cell(r.recall_accuracy, "%.4f") << " |\n";
    csv << r.name << "," << r.parameters << "," << cell(r.tokens_per_sec, "%.1f") << ","
        << cell(r.train_loss, "%.6f") << "," << cell(r.val_loss, "%.6f") << ","
        << cell(r.recall_accuracy, "%.6f") << "\n";
  }
  hymba::write_file_atomically((out / "table.md").string(), md.str());
  hymba::write_file_atomically((out / "table.csv").string(), csv.str());
}

}  // namespace

int main(int argc, char** argv) {
  std::string out;
  std::vector<std::string> sets, configs;
  int64_t recall_steps = -1;  // −1: each config's own train.steps
  hymba::CommandLine cl(argc, argv, kUsage);
  for (std::string arg; cl.next(arg);) {
    if (arg == "--out") {
      out = cl.value();
    } else if (arg == "--set") {
      sets.push_back(cl.value());
    } else if (arg == "--recall-steps") {
      recall_steps = cl.number<int64_t>(0);
    } else if (arg.starts_with("--")) {
      cl.unknown(arg);
    } else {
      configs.push_back(arg);
    }
  }
  if (out.empty() || configs.empty()) cl.usage_error("--out and at least one CONFIG are required");

  try {
    fs::create_directories(out);
    std::vector<Row> rows;
    for (const std::string& path : configs) {
      Row row;
      row.name = fs::path(path).stem().string();
      std::cout << "=== " << row.name << " (" << path << ")\n" << std::flush;
      std::vector<std::string> overrides = sets;
      overrides.push_back("run.dir=" + (fs::path(out) / row.name).string());
      const hymba::Config cfg = hymba::load_config(path, overrides);
      row.parameters = hymba::describe_model(cfg.model, cfg.train.seq_len).parameters;
      const hymba::TrainSummary lm = hymba::train(cfg, std::cout);
      row.tokens_per_sec = lm.tokens_per_sec;
      row.train_loss = lm.final_loss;
      row.val_loss = lm.val_loss;

      const int64_t steps = recall_steps >= 0 ? recall_steps : cfg.train.steps;
      if (steps > 0) {
        std::cout << "=== " << row.name << ": associative recall\n" << std::flush;
        std::vector<std::string> recall = sets;
        recall.push_back("data.format=recall");
        recall.push_back("train.steps=" + std::to_string(steps));
        recall.push_back("run.dir=" + (fs::path(out) / (row.name + "-recall")).string());
        row.recall_accuracy = hymba::train(hymba::load_config(path, recall), std::cout).recall_accuracy;
      }
      rows.push_back(row);
      write_tables(out, rows);
    }
    std::cout << "\n" << hymba::read_all_text((fs::path(out) / "table.md").string());
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
