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
  const std::string run = std::to_string(tc.batch_size) + " rows x " + std::to_string(tc.seq_len) +
                          " tokens, recompute " + recompute_name(tc.recompute);
#ifdef HYMBA_HAVE_CUDA
  if (tc.device != "cpu") {
    const TrainingMemory m = tc.precision == "bf16"
                                 ? plan_training_memory<CudaBf16HymbaModel>(cfg, 1, false)
                                 : plan_training_memory<CudaHymbaModel>(cfg, 1, false);
    return "training memory on one GPU (" + tc.precision + ", " + run + "): " + format_training_memory(m) +
           ", plus the CUDA context\n";
  }
#endif
  return "training memory on the CPU (fp32, " + run + "): " +
         format_training_memory(plan_training_memory<HymbaModel<float>>(cfg, 1, false)) + "\n";
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
