#include "trainer/trainer.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <type_traits>

#include "core/device.h"
#include "core/error.h"
#include "core/files.h"
#include "eval/perplexity.h"
#include "eval/recall.h"
#include "model/hymba_model.h"
#include "model/model_info.h"
#include "optim/adamw.h"
#include "optim/lr_schedule.h"
#ifdef HYMBA_HAVE_CUDA
#include "core/cuda_check.h"
#include "model/cuda_model.h"
#include "optim/cuda_adamw.h"
#include "trainer/gemm_algorithms.h"
#endif
#include "trainer/batches.h"
#include "parallel/grid.h"
#include "trainer/data_parallel.h"
#include "trainer/memory_plan.h"
#include "trainer/run_state.h"

namespace hymba {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Where to run: train.device cuda, or auto with a GPU present (and a build with CUDA), runs on
// a GPU (the rank's local index among the host's GPUs: GPU 0 for a single process); otherwise the
// CPU. A request that cannot be met is refused, never silently moved.
bool choose_device(const Config& cfg, const ProcessGroup& group, std::ostream& log) {
  const bool gpu = use_gpu(cfg.train.device, cfg.path + ": train.device");
  if (!gpu && cfg.train.precision != "fp32") {
    fail(cfg.path, ": train.precision: ", cfg.train.precision, " needs the GPU; the CPU trains in fp32");
  }
  if (gpu) {
#ifdef HYMBA_HAVE_CUDA
    const int device = group.local_rank() % cuda_device_count();
    if (group.local_size() > cuda_device_count()) {
      fail(cfg.path, ": train.device: ", group.local_size(), " ranks on this host but ", cuda_device_count(),
           " GPUs; launch at most one rank per GPU");
    }
    HYMBA_CUDA_CHECK(cudaSetDevice(device));
    log << "device: cuda, " << cuda_device_name(device) << ", " << cfg.train.precision
        << ", attention kernels: " << cuda_attention_kernels(cfg.model, cfg.train.precision == "bf16")
        << "\n";
#endif
    return true;
  }
  (void)group;  // only a GPU is chosen by rank
  if (cfg.train.threads > 0) omp_set_num_threads(static_cast<int>(cfg.train.threads));
  log << "device: cpu, " << omp_get_max_threads() << " threads, fp32\n";
  return false;
}

// Rank 0's metrics.jsonl; on the other ranks it stays closed and writes nothing.
struct MetricsFile {
  std::ofstream out;
  void write(const char* json) {
    if (!out.is_open()) return;
    out << json << "\n";
    out.flush();  // a crash loses at most the line being written
  }
};

// Validation after `step` steps, logged and recorded: the loss on the validation corpus, or for
// the recall task the accuracy (and loss) on held-out sequences of the evaluation seed.
struct Validation {
  double loss = -1, recall_accuracy = -1;
};

// Each data-parallel replica scores its share of every batch (its tensor-parallel ranks together);
// the sums are added across replicas.
template <class Model>
Validation validate(const Config& cfg, Model& model, const TrainingBatches& data, const ProcessGroup& replicas,
                    int64_t step, MetricsFile& metrics, std::ostream& log) {
  char line[160], json[160];
  Validation v;
  double& loss = v.loss;
  const int rank = replicas.rank(), world = replicas.size();
  if (data.recall()) {
    RecallResult r = evaluate_recall(model, data.recall_task(), cfg.eval.batches, kRecallEvalSeed, rank, world);
    double sums[3] = {double(r.answers), double(r.correct), r.loss_sum};
    replicas.all_reduce_sum(sums, 3);
    r = {int64_t(sums[0]), int64_t(sums[1]), sums[2]};
    loss = r.loss();
    v.recall_accuracy = r.accuracy();
    std::snprintf(line, sizeof line, "step %6lld/%lld | val loss %.4f | recall accuracy %.4f",
                  static_cast<long long>(step), static_cast<long long>(cfg.train.steps), loss, r.accuracy());
    std::snprintf(json, sizeof json, "{\"step\": %lld, \"val_loss\": %.9g, \"recall_accuracy\": %.9g}",
                  static_cast<long long>(step), loss, r.accuracy());
  } else {
    const PerplexityResult r =
        evaluate_perplexity(model, data.shards().val, cfg.eval.batches, data.shards().tokenizer, rank, world);
    double sums[2] = {r.loss * double(r.tokens), double(r.tokens)};
    replicas.all_reduce_sum(sums, 2);
    loss = sums[0] / sums[1];
    std::snprintf(line, sizeof line, "step %6lld/%lld | val loss %.4f", static_cast<long long>(step),
                  static_cast<long long>(cfg.train.steps), loss);
    std::snprintf(json, sizeof json, "{\"step\": %lld, \"val_loss\": %.9g}", static_cast<long long>(step), loss);
  }
  log << line << std::endl;
  metrics.write(json);
  return v;
}

struct StepResult {
  double loss = 0, lr = 0, grad_norm = 0;
};

// Optimizer step `step` (from 0): grad_accum micro-batches (on every data-parallel replica), the
// global norm, AdamW on this rank's shard, the updated weights gathered.
template <class Model, class Optimizer>
StepResult train_step(const Config& cfg, Model& model, Optimizer& opt, DataParallel<Model>& dp,
                      TrainingBatches& data, int64_t step) {
  const TrainConfig& tc = cfg.train;
  // Counted targets of the whole step over every rank: the loss is their mean.
  const int64_t counted = tc.grad_accum * data.counted_targets_per_batch();
  const double grad_scale = 1.0 / double(counted);
  model.zero_grads();
  double loss_sum = 0;
  for (int64_t micro = 0; micro < tc.grad_accum; ++micro) {
    const Batch& batch = data.next();
    const bool last = micro == tc.grad_accum - 1;  // its backward completes the gradients
    loss_sum += model.forward_backward(batch.ids, batch.targets, grad_scale,
                                       last ? dp.reduce_when_done() : typename Model::BucketDone{});
  }
  StepResult r;
  r.loss = dp.sum_over_replicas(loss_sum) / double(counted);
  r.grad_norm = dp.grad_norm();
  // A diverged run stops here, before the update spreads the damage into the weights (and into
  // the next checkpoint).
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) {
    fail("step ", step + 1, ": the training loss (", r.loss, ") or gradient norm (", r.grad_norm,
         ") is not finite: the run diverged; lower optim.lr, raise optim.warmup_steps or check the data");
  }
  r.lr = learning_rate(cfg.optim, step, tc.steps);
  const double clip = clip_factor(r.grad_norm, cfg.optim.grad_clip);
  // Where the GEMMs read a bf16 copy, the optimizer writes it as it updates the weights.
  if constexpr (Model::kComputeCopy) opt.step(model.params.data(), dp.shard_grads(), r.lr, clip, model.compute_weights());
  else opt.step(model.params.data(), dp.shard_grads(), r.lr, clip);
  dp.gather_params(/*copy_written=*/Model::kComputeCopy);
  return r;
}

// The progress line and the metrics JSON line. Throughput counts training steps only, not the
// validation and checkpoint time between them. On the GPU the line adds the model FLOPs
// utilisation (model FLOPs per token of `--info` × tokens/s against kPeakFlops) and the GPU
// memory in use, whose largest value is the run's peak (everything is allocated before step 1,
// cuBLAS's plans during it).
class Progress {
 public:
  Progress(const Config& cfg, bool gpu, MetricsFile& metrics, std::ostream& log)
      : cfg_(cfg), gpu_(gpu), metrics_(metrics), log_(log),
        tokens_per_step_(cfg.train.grad_accum * cfg.train.batch_size * cfg.train.seq_len),
        flops_per_token_(describe_model(cfg.model, cfg.train.seq_len).train_flops()) {}

  void count_step(double seconds) {
    interval_tokens_ += tokens_per_step_;
    interval_seconds_ += seconds;
  }

  // world: the job's ranks (GPUs), which MFU is per.
  void report(int64_t done, const StepResult& r, int world) {
    const double tok_s = double(interval_tokens_) / interval_seconds_;
    char line[320];
    int n = std::snprintf(line, sizeof line, "step %6lld/%lld | loss %.4f | lr %.3e | grad norm %.4f | %.0f tok/s",
                          static_cast<long long>(done), static_cast<long long>(cfg_.train.steps), r.loss, r.lr,
                          r.grad_norm, tok_s);
    char json[400];
    int j = std::snprintf(json, sizeof json,
                          "{\"step\": %lld, \"loss\": %.9g, \"lr\": %.9g, \"grad_norm\": %.9g, "
                          "\"tokens_per_sec\": %.9g, \"tokens\": %lld, \"elapsed_s\": %.6g",
                          static_cast<long long>(done), r.loss, r.lr, r.grad_norm, tok_s,
                          static_cast<long long>(done * tokens_per_step_), seconds_since(start_));
    if (gpu_) {
      const double mfu = model_flops_utilisation(tok_s, world);
      const GpuMemory mem = gpu_memory();
      peak_memory_ = std::max(peak_memory_, mem.used);
      std::snprintf(line + n, sizeof line - size_t(n), " | MFU %.1f%% | GPU memory %.1f GiB", 100 * mfu,
                    mem.used / double(1 << 30));
      j += std::snprintf(json + j, sizeof json - size_t(j), ", \"mfu\": %.6g, \"gpu_memory_bytes\": %.0f", mfu,
                         mem.used);
    }
    std::snprintf(json + j, sizeof json - size_t(j), "}");
    log_ << line << std::endl;
    metrics_.write(json);
    interval_tokens_ = 0;
    interval_seconds_ = 0;
  }

  double peak_memory() const { return peak_memory_; }
  double model_flops_utilisation(double tokens_per_sec, int world) const {
    return tokens_per_sec * flops_per_token_ / (kPeakFlops * world);
  }

 private:
  const Config& cfg_;
  const bool gpu_;
  MetricsFile& metrics_;
  std::ostream& log_;
  const int64_t tokens_per_step_;
  const double flops_per_token_;
  const Clock::time_point start_ = Clock::now();
  int64_t interval_tokens_ = 0;
  double interval_seconds_ = 0;
  double peak_memory_ = 0;
};

void log_plan(const Config& cfg, const TrainingBatches& data, const ResumePoint& from, const ParallelGrid& grid,
              const TrainingMemory& memory, bool gpu, std::ostream& log) {
  const TrainConfig& tc = cfg.train;
  const ModelInfo info = describe_model(cfg.model, tc.seq_len);
  log << "model: " << info.parameters << " parameters, " << cfg.model.num_hidden_layers
      << " layers; data: " << data.describe() << "\n";
  if (tc.recompute != Recompute::none) log << "recompute: " << recompute_name(tc.recompute) << " (train.recompute)\n";
  log << "batch: " << tc.grad_accum << " x " << tc.batch_size << " rows x " << tc.seq_len
      << " tokens = " << tc.grad_accum * tc.batch_size * tc.seq_len << " tokens per step; steps "
      << from.step + 1 << ".." << tc.steps << "; run.dir " << cfg.run.dir << "\n";
  log << "memory: " << format_training_memory(memory) << (gpu ? " per GPU" : " on the CPU") << "\n";
  const ProcessGroup& job = grid.job();
  if (job.uses_mpi()) {
    log << "parallel: " << job.size() << " ranks = " << grid.data().size() << " data-parallel replicas (ZeRO-1) x "
        << grid.tensor().size() << " tensor-parallel ranks, " << tc.batch_size / grid.data().size()
        << " rows per replica per micro-batch; " << job.local_size() << " ranks on this host\n";
  }
}

// The grid's split of the job, and the data-parallel split of train.batch_size. (That
// parallel.tp divides the heads and widths is config validation's.)
void check_parallel(const Config& cfg, const ProcessGroup& job) {
  const int64_t tp = cfg.parallel.tp;
  if (job.size() % tp != 0) {
    fail(cfg.path, ": parallel.tp: ", tp, " does not divide the job's ", job.size(),
         " ranks (mpirun -np N runs N / parallel.tp data-parallel replicas of parallel.tp ranks each)");
  }
  const int64_t replicas = job.size() / tp;
  if (cfg.train.batch_size % replicas != 0) {
    fail(cfg.path, ": train.batch_size: ", cfg.train.batch_size, " rows do not split evenly over ", replicas,
         " data-parallel replicas (train.batch_size is the global micro-batch; make it a multiple of ",
         "the rank count / parallel.tp)");
  }
}

template <class Model, class Optimizer>
TrainSummary run_training(const Config& cfg, const ParallelGrid& grid, std::ostream& log) {
  const TrainConfig& tc = cfg.train;
  const ProcessGroup& job = grid.job();
  const int world = job.size(), replicas = grid.data().size();
  // Tensor parallelism exchanges activations in order with the model's compute.
  std::unique_ptr<Communicator> tensor_comm;
  if (grid.tensor().size() > 1) {
    tensor_comm = make_communicator(grid.tensor(), DataParallel<Model>::kHostBuffers, Ordering::in_order);
  }
  const TensorParallel tp{grid.tensor().rank(), grid.tensor().size(), tensor_comm.get()};
  constexpr bool kGpu = !DataParallel<Model>::kHostBuffers;
  const TrainingMemory memory = plan_training_memory<Model>(cfg, replicas, job.uses_mpi());
  if constexpr (kGpu) check_gpu_memory_fits(cfg, memory);
  Model model(cfg.model, tc.batch_size / replicas, tc.seq_len, replicas, tp, tc.recompute);  // [B / replicas] rows per rank
  DataParallel<Model> dp(grid, model);
  Optimizer opt(model.layout(), cfg.optim, dp.shard());
  const ResumePoint from = restore_state(cfg, model, opt, grid, log);
  if (from.checkpoint.empty()) model.init(tc.seed);
  TrainSummary summary;
  summary.resumed_from_step = from.step;
  if (from.step == tc.steps) {
    log << "done: " << from.checkpoint << " is already at the last step, " << tc.steps << "\n";
    return summary;
  }

  TrainingBatches data(cfg, from.cursor, grid, log);
  log_plan(cfg, data, from, grid, memory, kGpu, log);
  const bool validation = data.recall() || !data.shards().val.empty();

  // run.dir belongs to rank 0.
  const fs::path dir = cfg.run.dir;
  MetricsFile metrics;
  if (job.rank() == 0) {
    fs::create_directories(dir);
    set_aside_later_steps(cfg.run.dir, from.step, log);
    write_file_atomically((dir / "config.yaml").string(), cfg.resolved);
    metrics.out.open(dir / "metrics.jsonl", std::ios::app);
    if (!metrics.out) fail((dir / "metrics.jsonl").string(), ": cannot open for writing");
  }

#ifdef HYMBA_HAVE_CUDA
  std::optional<GemmAlgorithms> gemm_algorithms;
  if constexpr (kGpu) gemm_algorithms.emplace(cfg, model.backend().gemm(), from.gemm, from.checkpoint, job, log);
#endif
  const auto start = Clock::now();
  double step_seconds = 0;  // training steps only, for the summary's throughput
  constexpr bool gpu = !std::is_same_v<Model, HymbaModel<float>>;
  Progress progress(cfg, gpu, metrics, log);
  if (gpu) log << "MFU is reported against " << kPeakFlopsName << "\n";
  for (int64_t step = from.step; step < tc.steps; ++step) {
    const auto step_start = Clock::now();
    const StepResult r = train_step(cfg, model, opt, dp, data, step);
#ifdef HYMBA_HAVE_CUDA
    if (step == from.step && gemm_algorithms) gemm_algorithms->after_first_step();
#endif
    const double seconds = seconds_since(step_start);
    progress.count_step(seconds);
    step_seconds += seconds;
    const int64_t done = step + 1;
    if (step == from.step) summary.first_loss = r.loss;
    summary.final_loss = r.loss;
    if (step == from.step || done % tc.log_every == 0 || done == tc.steps) progress.report(done, r, world);
    // The last step's validation is the one after training, below.
    if (cfg.eval.every > 0 && done % cfg.eval.every == 0 && done < tc.steps) {
      validate(cfg, model, data, grid.data(), done, metrics, log);
    }
    if (cfg.checkpoint.every > 0 && (done % cfg.checkpoint.every == 0 || done == tc.steps)) {
      write_checkpoint(cfg, model, opt, grid, done, data.cursor(), log);
    }
  }
  summary.steps = tc.steps - from.step;
  summary.seconds = seconds_since(start);
  summary.tokens_per_sec = double(summary.steps * tc.grad_accum * tc.batch_size * tc.seq_len) / step_seconds;
  if (validation) {
    const Validation v = validate(cfg, model, data, grid.data(), tc.steps, metrics, log);
    summary.val_loss = v.loss;
    summary.recall_accuracy = v.recall_accuracy;
  }
  char line[256];
  std::snprintf(line, sizeof line, "done: %lld steps in %.1f s; loss %.4f -> %.4f",
                static_cast<long long>(summary.steps), summary.seconds, summary.first_loss,
                summary.final_loss);
  log << line;
  if (from.step > 0) log << " (resumed after step " << from.step << ")";
  if (validation) log << "; validation loss " << summary.val_loss;
  std::snprintf(line, sizeof line, "; %.0f tok/s", summary.tokens_per_sec);
  log << line;
  if (gpu) {
    std::snprintf(line, sizeof line, ", MFU %.1f%%, peak GPU memory %.2f GiB",
                  100 * progress.model_flops_utilisation(summary.tokens_per_sec, world),
                  progress.peak_memory() / double(1 << 30));
    log << line;
  }
  log << std::endl;
  return summary;
}

}  // namespace

TrainSummary train(const Config& cfg, std::ostream& log) {
  ProcessGroup single;
  return train(cfg, single, log);
}

TrainSummary train(const Config& cfg, ProcessGroup& group, std::ostream& log) {
  group.set_timeout_seconds(cfg.parallel.timeout_s);
  check_parallel(cfg, group);
  std::ostream quiet(nullptr);  // ranks other than 0 print nothing but errors
  std::ostream& out = group.rank() == 0 ? log : quiet;
  const bool gpu = choose_device(cfg, group, out);
  const ParallelGrid grid(group, int(cfg.parallel.tp));
  if (gpu) {
#ifdef HYMBA_HAVE_CUDA
    if (cfg.train.precision == "bf16") return run_training<CudaBf16HymbaModel, CudaAdamW>(cfg, grid, out);
    return run_training<CudaHymbaModel, CudaAdamW>(cfg, grid, out);
#endif
  }
  return run_training<HymbaModel<float>, AdamW<float>>(cfg, grid, out);
}

}  // namespace hymba
