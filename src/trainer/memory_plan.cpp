#include "trainer/memory_plan.h"

#include <cstdio>

#include "core/device.h"
#include "core/error.h"
#include "model/cuda_model.h"

namespace hymba {

namespace {

constexpr double kMiB = double(int64_t(1) << 20), kGiB = double(int64_t(1) << 30);

// bytes in `unit` (kMiB or kGiB), one decimal, with the unit's name where `named`.
std::string in_unit(double bytes, double unit, bool named = false) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%s", bytes / unit, named ? (unit == kGiB ? " GiB" : " MiB") : "");
  return buf;
}
std::string gib(double bytes) { return in_unit(bytes, kGiB, true); }
// Per-token figures, 3 significant digits: "3.84 MiB", "342 KiB".
std::string per_token(double bytes) {
  char buf[32];
  if (bytes >= kMiB) {
    std::snprintf(buf, sizeof buf, "%.3g MiB", bytes / kMiB);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g KiB", bytes / 1024);
  }
  return buf;
}

// What --info prints for the model type a run uses: its activations per token of one row (the
// buffers a row of seq_len tokens keeps for backward, and its scratch with the logits, over
// seq_len), then the whole run's memory. precision: "fp32" or "bf16"; place: "one GPU", "the CPU".
template <class Model>
std::string describe_memory(const Config& cfg, const std::string& precision, const std::string& place) {
  const TrainConfig& tc = cfg.train;
  const std::string seq = std::to_string(tc.seq_len), recompute = recompute_name(tc.recompute);
  const ModelMemory row = Model::memory(cfg.model, 1, tc.seq_len, 1, {0, int(cfg.parallel.tp)}, tc.recompute);
  const double T = double(tc.seq_len);
  return "activation memory per token: " + per_token(double(row.saved) / T) + " kept for backward (" + precision +
         " on " + place + ", seq_len " + seq + ", recompute " + recompute + "), plus " + per_token(double(row.scratch) / T) +
         " of backward scratch and logits\n" + "training memory on " + place + " (" + precision + ", " +
         std::to_string(tc.batch_size) + " rows x " + seq + " tokens, recompute " + recompute +
         "): " + format_training_memory(plan_training_memory<Model>(cfg, 1, false));
}

}  // namespace

std::string format_training_memory(const TrainingMemory& m) {
  const double unit = double(m.total()) < kGiB ? kMiB : kGiB;  // one unit for the line
  const auto part = [&](int64_t bytes) { return in_unit(double(bytes), unit); };
  std::string s = in_unit(double(m.total()), unit, true) + " (weights and gradients " + part(m.model.weights) +
                  ", optimizer " + part(m.optimizer);
  if (m.reduced_grads) s += ", reduced gradients " + part(m.reduced_grads);
  return s + ", activations kept for backward " + part(m.model.saved) + ", scratch " + part(m.model.scratch) +
         ", kernels " + part(m.model.kernels) + ")";
}

std::string describe_training_memory(const Config& cfg) {
  const TrainConfig& tc = cfg.train;
#ifdef HYMBA_HAVE_CUDA
  if (tc.device != "cpu") {
    return (tc.precision == "bf16" ? describe_memory<CudaBf16HymbaModel>(cfg, "bf16", "one GPU")
                                   : describe_memory<CudaHymbaModel>(cfg, "fp32", "one GPU")) +
           ", plus the CUDA context\n";
  }
#endif
  return describe_memory<HymbaModel<float>>(cfg, "fp32", "the CPU") + "\n";
}

void check_gpu_memory_fits(const Config& cfg, const TrainingMemory& plan) {
  const GpuMemory gpu = gpu_memory();
  const double free = gpu.total - gpu.used;
  if (gpu.total == 0 || double(plan.total()) <= free) return;  // no figures: cudaMalloc will tell
  fail(cfg.path, ": training needs ", format_training_memory(plan), " of GPU memory per rank, but ",
       gib(free), " of the GPU's ", gib(gpu.total),
       " are free. Lower train.batch_size (raising train.grad_accum keeps the tokens per step), set "
       "train.recompute (norms, mlp or all keep fewer activations), or split the model with parallel.tp");
}

}  // namespace hymba
