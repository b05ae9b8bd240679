#include "trainer/trainer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "core/files.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "model/hymba_model.h"
#include "model/model_info.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"

namespace hymba {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Picks where to run. The CUDA training path is not built yet (GPU issue), so a GPU is only
// reported; `train.device: cuda` is refused rather than silently run on the CPU.
void choose_device(const Config& cfg, std::ostream& log) {
  const int gpus = cuda_device_count();
  if (cfg.train.device == "cuda") {
    fail(cfg.path, ": train.device: cuda: this build has no CUDA training path yet; use auto or cpu");
  }
  if (cfg.train.precision != "fp32") {
    fail(cfg.path, ": train.precision: ", cfg.train.precision, " needs the CUDA training path; the CPU trains in fp32");
  }
  if (cfg.train.threads > 0) omp_set_num_threads(static_cast<int>(cfg.train.threads));
  log << "device: cpu, " << omp_get_max_threads() << " threads";
  if (gpus > 0 && cfg.train.device == "auto") {
    log << " (GPU found: " << cuda_device_name(0) << "; the CUDA training path is not built yet)";
  }
  log << "\n";
}

struct MetricsFile {
  std::ofstream out;
  void write(const char* json) {
    out << json << "\n";
    out.flush();  // a crash loses at most the line being written
  }
};

// Mean loss over the first `batches` batches of the validation rows, in order (no shuffling).
double evaluate(HymbaModel<float>& model, const DatasetShards& shards, int64_t max_vocab,
                int64_t batches) {
  LoaderOptions o;
  o.shards = shards.val;
  o.seq_len = model.seq_len();
  o.batch_size = model.batch();
  o.shuffle = false;
  o.max_vocab = max_vocab;
  o.tokenizer = shards.tokenizer;
  DataLoader val(o);
  batches = std::min<int64_t>(batches, val.rows_per_epoch() / model.batch());
  double sum = 0;
  for (int64_t i = 0; i < batches; ++i) {
    const Batch& b = val.next();
    sum += model.forward(b.ids, b.targets);
  }
  return sum / double(batches * model.batch() * model.seq_len());
}

}  // namespace

TrainSummary train(const Config& cfg, std::ostream& log) {
  const TrainConfig& tc = cfg.train;
  choose_device(cfg, log);

  const fs::path dir = cfg.run.dir;
  if (fs::exists(dir / "metrics.jsonl")) {
    fail("run.dir ", dir.string(), " already holds a run (metrics.jsonl); choose another run.dir",
         " or remove that folder");
  }
  fs::create_directories(dir);
  write_file_atomically((dir / "config.yaml").string(), cfg.resolved);

  const DatasetShards shards = dataset_shards(cfg.data, log);
  const int64_t B = tc.batch_size, T = tc.seq_len;
  LoaderOptions lo;
  lo.shards = shards.train;
  lo.seq_len = T;
  lo.batch_size = B;
  lo.seed = tc.seed;
  lo.max_vocab = cfg.model.vocab_size;
  lo.tokenizer = shards.tokenizer;
  DataLoader data(lo);
  HymbaModel<float> model(cfg.model, B, T);
  model.init(tc.seed);
  AdamW<float> opt(model.layout(), cfg.optim);
  const ModelInfo info = describe_model(cfg.model, T);
  log << "model: " << info.parameters << " parameters, " << cfg.model.num_hidden_layers
      << " layers; data: " << data.tokens() << " tokens, " << data.rows_per_epoch()
      << " rows of " << T + 1 << " per epoch\n";
  log << "batch: " << tc.grad_accum << " x " << B << " rows x " << T << " tokens = "
      << tc.grad_accum * B * T << " tokens per step; " << tc.steps << " steps; run.dir "
      << dir.string() << "\n";

  MetricsFile metrics{std::ofstream(dir / "metrics.jsonl", std::ios::app)};
  if (!metrics.out) fail((dir / "metrics.jsonl").string(), ": cannot open for writing");

  const int64_t tokens_per_step = tc.grad_accum * B * T;
  const double grad_scale = 1.0 / double(tokens_per_step);  // mean over the whole step
  TrainSummary summary;
  const auto start = Clock::now();
  auto interval_start = start;
  int64_t interval_tokens = 0;
  for (int64_t step = 0; step < tc.steps; ++step) {
    model.zero_grads();
    double loss_sum = 0;
    for (int64_t micro = 0; micro < tc.grad_accum; ++micro) {
      const Batch& batch = data.next();
      loss_sum += model.forward_backward(batch.ids, batch.targets, grad_scale);
    }
    const double loss = loss_sum / double(tokens_per_step);
    const double grad_norm = global_grad_norm(model.grads.data(), model.layout());
    const double lr = learning_rate(cfg.optim, step, tc.steps);
    opt.step(model.params.data(), model.grads.data(), lr,
             clip_factor(grad_norm, cfg.optim.grad_clip));
    interval_tokens += tokens_per_step;

    const int64_t done = step + 1;
    if (step == 0) summary.first_loss = loss;
    summary.final_loss = loss;
    if (done == 1 || done % tc.log_every == 0 || done == tc.steps) {
      const double tok_s = double(interval_tokens) / seconds_since(interval_start);
      char line[256];
      std::snprintf(line, sizeof line,
                    "step %6lld/%lld | loss %.4f | lr %.3e | grad norm %.4f | %.0f tok/s",
                    static_cast<long long>(done), static_cast<long long>(tc.steps), loss, lr,
                    grad_norm, tok_s);
      log << line << std::endl;
      char json[320];
      std::snprintf(json, sizeof json,
                    "{\"step\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, "
                    "\"tokens_per_sec\": %.9g, \"tokens\": %lld, \"elapsed_s\": %.6g}",
                    static_cast<long long>(done), loss, lr, grad_norm, tok_s,
                    static_cast<long long>(done * tokens_per_step), seconds_since(start));
      metrics.write(json);
      interval_start = Clock::now();
      interval_tokens = 0;
    }
  }
  summary.steps = tc.steps;
  summary.seconds = seconds_since(start);
  if (!shards.val.empty()) {
    summary.val_loss = evaluate(model, shards, cfg.model.vocab_size, 8);
    char json[128];
    std::snprintf(json, sizeof json, "{\"step\": %lld, \"val_loss\": %.9g}",
                  static_cast<long long>(tc.steps), summary.val_loss);
    metrics.write(json);
  }
  char line[256];
  std::snprintf(line, sizeof line, "done: %lld steps in %.1f s; loss %.4f -> %.4f",
                static_cast<long long>(summary.steps), summary.seconds, summary.first_loss,
                summary.final_loss);
  log << line;
  if (!shards.val.empty()) log << "; validation loss " << summary.val_loss;
  log << std::endl;
  return summary;
}

}  // namespace hymba
