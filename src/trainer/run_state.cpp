#include "trainer/run_state.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "io/checkpoint.h"
#include "model/host_access.h"
#include "model/hymba_model.h"
#include "optim/adamw.h"
#include "model/layer_plan.h"
#include "parallel/param_shard.h"
#ifdef HYMBA_HAVE_CUDA
#include "model/cuda_model.h"
#include "optim/cuda_adamw.h"
#endif

namespace hymba {
namespace {

namespace fs = std::filesystem;

// ---- does a checkpoint fit this config -------------------------------------------------------

// Keys whose value fixes what a checkpoint's state means: the model's tensors, and the training
// stream (rows, batches, order) the loader cursor counts rows of. data.cache_dir only says where
// a corpus is prepared. Every other key (steps, lr, logging, ...) may change between sessions.
bool fixes_state(const std::string& section, const std::string& key) {
  if (section == "model") return true;
  if (section == "data") return key != "cache_dir";
  return section == "train" &&
         (key == "batch_size" || key == "seq_len" || key == "grad_accum" || key == "seed");
}

std::string show(const YAML::Node& n) { return n.IsDefined() ? YAML::Dump(n) : "(absent)"; }

// "section.key (checkpoint: X, now: Y)" for every state-fixing key on which the two resolved
// configs differ. Keys are compared by value, so either side may lack one the other has (a
// config written by an older build).
std::vector<std::string> state_differences(const YAML::Node& saved, const YAML::Node& now) {
  std::vector<std::string> out;
  for (const std::string section : {"model", "data", "train"}) {
    std::set<std::string> keys;
    for (const YAML::Node& side : {saved[section], now[section]}) {
      for (const auto& kv : side) keys.insert(kv.first.Scalar());
    }
    for (const std::string& key : keys) {
      if (!fixes_state(section, key)) continue;
      const std::string a = show(saved[section][key]), b = show(now[section][key]);
      if (a != b) out.push_back(section + "." + key + " (checkpoint: " + a + ", now: " + b + ")");
    }
  }
  return out;
}

void check_compatible(const Config& cfg, const std::string& path, const CheckpointMeta& meta) {
  YAML::Node saved;
  try {
    saved = YAML::Load(meta.config);
  } catch (const YAML::Exception& e) {
    fail(path, ": the stored config is not YAML (", e.what(), ")");
  }
  const std::vector<std::string> diffs = state_differences(saved, YAML::Load(cfg.resolved));
  if (diffs.empty()) return;
  std::string list;
  for (const std::string& d : diffs) list += (list.empty() ? "" : "; ") + d;
  fail(path, ": cannot resume with ", cfg.path, ": it changes ", list,
       ". A resumed run must keep every model.* and data.* key and train.batch_size, seq_len, "
       "grad_accum and seed (start a new run.dir to change them)");
}

// ---- loading (rank 0) ----------------------------------------------------------------------

// What a checkpoint holds, in host memory with the full layout of this run's model.
struct HostState {
  std::vector<float> params, m, v;  // [layout.storage]
  int64_t adam_steps = 0;
};

// Loads `path` whole into `state`; an Error when any of it cannot be read.
ResumePoint load_state(const std::string& path, const ParamLayout& layout, HostState& state, std::ostream& log) {
  for (std::vector<float>* b : {&state.params, &state.m, &state.v}) b->assign(size_t(layout.storage), 0.0f);
  const LoadedCheckpoint c = load_checkpoint(path, layout, state.params.data(), state.m.data(), state.v.data());
  state.adam_steps = c.has_optimizer_state ? c.meta.adam_steps : 0;
  if (!c.has_optimizer_state) {
    log << "resume: " << path << " holds no optimizer state; AdamW starts from zero moments\n";
  }
  return {path, c.meta.step, LoaderCursor{c.meta.loader_rows}, c.meta.gemm};
}

ResumePoint resume_from(const Config& cfg, const std::string& path, const ParamLayout& layout, HostState& state,
                        std::ostream& log) {
  check_compatible(cfg, path, read_checkpoint_meta(path));
  return load_state(path, layout, state, log);
}

// Runs `read`; an Error is a checkpoint that cannot be used, logged and added to `reasons`.
template <class F>
bool readable(F&& read, std::vector<std::string>& reasons, std::ostream& log) {
  try {
    read();
    return true;
  } catch (const Error& e) {
    log << "resume: skipping a checkpoint that does not load: " << e.what() << "\n";
    reasons.push_back(e.what());
    return false;
  }
}

// train.resume: auto. A config that does not fit is not a reason to go back to an older
// checkpoint (it would not fit either): that error stops the run.
ResumePoint resume_newest(const Config& cfg, const ParamLayout& layout, HostState& state, std::ostream& log) {
  const std::vector<std::string> found = list_checkpoints(cfg.run.dir);
  if (found.empty()) {
    log << "resume: no checkpoint in " << cfg.run.dir << "; starting fresh\n";
    return {};
  }
  std::vector<std::string> reasons;
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    CheckpointMeta meta;
    if (!readable([&] { meta = read_checkpoint_meta(*it); }, reasons, log)) continue;
    check_compatible(cfg, *it, meta);
    ResumePoint point;
    if (readable([&] { point = load_state(*it, layout, state, log); }, reasons, log)) return point;
  }
  std::string list;
  for (const std::string& r : reasons) list += "\n  " + r;
  fail("run.dir ", cfg.run.dir, ": none of its ", found.size(),
       " checkpoints loads, so the run cannot resume (and will not start over next to them; "
       "move them aside to start fresh):",
       list);
}

// train.resume: none.
void refuse_existing_run(const std::string& run_dir) {
  if (fs::exists(fs::path(run_dir) / "metrics.jsonl") || !list_checkpoints(run_dir).empty()) {
    fail("run.dir ", run_dir, " already holds a run (metrics.jsonl or checkpoints); choose another",
         " run.dir, remove that folder, or continue it with train.resume=auto");
  }
}

// ---- the steps after the resume point ------------------------------------------------------

// The step of a metrics line; -1 for a line that is not a JSON object with an integer step.
int64_t metrics_step(const std::string& line, const std::string& path, int64_t line_number) {
  try {
    const JsonValue v = parse_json(line, JsonSource{path, line_number, 0});
    const JsonValue* step = v.find("step");
    return step && step->is_integer() ? step->as_int() : -1;
  } catch (const Error&) {
    return -1;
  }
}

void append_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::app | std::ios::binary);
  out << text;
  out.flush();
  if (!out) fail(path.string(), ": cannot append");
}

// The orphaned lines are safe in their file before metrics.jsonl is replaced: a crash in
// between leaves them twice, never nowhere.
void set_aside_metrics(const fs::path& dir, int64_t step, std::ostream& log) {
  const fs::path path = dir / "metrics.jsonl";
  if (!fs::exists(path)) return;
  std::istringstream in(read_all_text(path.string()));
  std::string kept, later;
  int64_t line_number = 0, moved = 0;
  for (std::string line; std::getline(in, line);) {
    const int64_t s = metrics_step(line, path.string(), ++line_number);
    const bool keep = s >= 0 && s <= step;
    (keep ? kept : later) += line + "\n";
    moved += !keep;
  }
  if (moved == 0) return;
  const fs::path aside = dir / ("metrics.orphaned-" + std::to_string(step) + ".jsonl");
  append_text(aside, later);
  write_file_atomically(path.string(), kept);
  log << "resume: moved " << moved << " metrics lines of steps after " << step << " to "
      << aside.string() << "\n";
}

// checkpoint-N.orphaned-<step>.h5, or with -2, -3, ... added while that name is taken (the same
// step orphaned twice), so no file is ever overwritten.
fs::path orphan_name(const fs::path& checkpoint, int64_t step) {
  const std::string base = checkpoint.stem().string() + ".orphaned-" + std::to_string(step);
  fs::path name = checkpoint.parent_path() / (base + ".h5");
  for (int n = 2; fs::exists(name); ++n) {
    name = checkpoint.parent_path() / (base + "-" + std::to_string(n) + ".h5");
  }
  return name;
}

void set_aside_checkpoints(const std::string& run_dir, int64_t step, std::ostream& log) {
  for (const std::string& path : list_checkpoints(run_dir)) {
    // list_checkpoints only returns names checkpoint-<digits>.h5.
    const int64_t n = std::stoll(fs::path(path).stem().string().substr(sizeof "checkpoint-" - 1));
    if (n <= step) continue;
    const fs::path aside = orphan_name(path, step);
    std::error_code ec;
    fs::rename(path, aside, ec);
    if (ec) fail(path, ": cannot move aside to ", aside.string(), " (", ec.message(), ")");
    log << "resume: moved " << path << " (after step " << step << ") to " << aside.string()
        << "\n";
  }
}

// train.resume decides which checkpoint, if any, `state` is loaded from.
ResumePoint choose_and_load(const Config& cfg, const ParamLayout& layout, HostState& state, std::ostream& log) {
  const std::string& resume = cfg.train.resume;
  if (resume == "none") {
    refuse_existing_run(cfg.run.dir);
    return {};
  }
  const ResumePoint point = resume == "auto" ? resume_newest(cfg, layout, state, log)
                                             : resume_from(cfg, resume, layout, state, log);
  if (point.step > cfg.train.steps) {
    fail(cfg.path, ": train.steps: ", cfg.train.steps, " is below step ", point.step, " of ",
         point.checkpoint, " (a resumed run can only go on)");
  }
  return point;
}

// ---- between job rank 0's whole model and every rank's share and shard ----------------------
//
// A checkpoint holds whole tensors (a tp = 1 layout without data-parallel padding, `full`). Job
// rank 0 reads or writes it. Tensor shares travel within replica 0's tensor-parallel ranks (job
// ranks 0 .. tp−1, each data-parallel rank 0 of its share); ZeRO-1 shards within each
// data-parallel group.

// The layout of the whole model, as checkpoints hold it.
ParamLayout whole_model_layout(const ModelConfig& c) { return build_param_layout(c, plan_layers(c)); }

// Rank 0's point and step count to every rank.
void share_point(ResumePoint& point, int64_t& adam_steps, const ProcessGroup& group) {
  group.broadcast(point.checkpoint, 0);
  int64_t numbers[3] = {point.step, int64_t(point.cursor.rows), adam_steps};
  group.broadcast(numbers, sizeof numbers, 0);
  point.step = numbers[0];
  point.cursor.rows = uint64_t(numbers[1]);
  adam_steps = numbers[2];
}

// Tensor rank t's layout: what `layout` (this rank's) is for rank t.
ParamLayout layout_of_rank(const ModelConfig& c, const ParamLayout& layout, const ParallelGrid& grid, int t) {
  if (t == layout.tp.rank) return layout;
  return build_param_layout(c, plan_layers(c), grid.data().size(), {t, layout.tp.size});
}

// Job rank 0's whole buffer `whole` [full.storage] → this rank's tensor share [layout.storage],
// on the data-parallel ranks 0 (empty on the others).
std::vector<float> share_of_whole(const ModelConfig& c, const ParamLayout& full, const ParamLayout& layout,
                                  const ParallelGrid& grid, const std::vector<float>& whole) {
  if (grid.data().rank() != 0) return {};
  const int tp = layout.tp.size;
  const int64_t n = layout.storage;  // the same on every tensor rank: the shares are equal
  std::vector<float> all, mine(size_t(n), 0.0f);  // all [tp, n] on job rank 0
  if (grid.job().rank() == 0) {
    all.assign(size_t(tp * n), 0.0f);
    for (int t = 0; t < tp; ++t) full_to_part(full, whole.data(), layout_of_rank(c, layout, grid, t), all.data() + t * n);
  }
  grid.tensor().scatter(all.data(), mine.data(), n, 0);
  return mine;
}

// Every tensor rank's share `mine` [layout.storage] (held by the data-parallel ranks 0) → the
// whole buffer [full.storage] on job rank 0 (empty elsewhere).
std::vector<float> whole_of_shares(const ModelConfig& c, const ParamLayout& full, const ParamLayout& layout,
                                   const ParallelGrid& grid, const float* mine) {
  if (grid.data().rank() != 0) return {};
  const int tp = layout.tp.size;
  const int64_t n = layout.storage;
  std::vector<float> all(grid.job().rank() == 0 ? size_t(tp * n) : 0), whole;  // all [tp, n]
  grid.tensor().gather(mine, all.data(), n, 0);
  if (grid.job().rank() != 0) return {};
  whole.assign(size_t(full.storage), 0.0f);
  for (int t = 0; t < tp; ++t) part_to_full(layout_of_rank(c, layout, grid, t), all.data() + t * n, full, whole.data());
  return whole;
}

// The data-parallel rank 0's share `share` [layout.storage] → every data-parallel rank's compact
// ZeRO-1 shard `shard` [length].
template <class Array>
void scatter_shards(const ParamLayout& layout, const ProcessGroup& replicas, const std::vector<float>& share,
                    Array& shard) {
  const int64_t length = shard.size();
  std::vector<float> all(replicas.rank() == 0 ? size_t(replicas.size() * length) : 0), staging;
  if (replicas.rank() == 0) full_to_shards(layout, replicas.size(), share.data(), all.data());
  replicas.scatter(all.data(), host_buffer_to_overwrite(shard, staging), length, 0);
  commit_host_buffer(shard, staging);
}

// Every data-parallel rank's compact shard [length] → the share [layout.storage] on the
// data-parallel rank 0 (empty elsewhere).
template <class Array>
std::vector<float> gather_shards(const ParamLayout& layout, const ProcessGroup& replicas, Array& shard) {
  const int64_t length = shard.size();
  std::vector<float> staging, all(replicas.rank() == 0 ? size_t(replicas.size() * length) : 0), share;
  replicas.gather(host_buffer(shard, staging), all.data(), length, 0);
  if (replicas.rank() == 0) {
    share.assign(size_t(layout.storage), 0.0f);
    shards_to_full(layout, replicas.size(), all.data(), share.data());
  }
  return share;
}

// The GEMM algorithms the model computes with: a GPU model's (job rank 0's, which every rank
// runs: trainer/gemm_algorithms.h); none on the CPU.
template <class Model>
std::optional<GemmChoices> gemm_choices(Model& model) {
#ifdef HYMBA_HAVE_CUDA
  if constexpr (!std::is_same_v<Model, HymbaModel<float>>) return model.backend().gemm().choices();
#endif
  (void)model;
  return std::nullopt;
}

}  // namespace

template <class Model, class Optimizer>
ResumePoint restore_state(const Config& cfg, Model& model, Optimizer& opt, const ParallelGrid& grid,
                          std::ostream& log) {
  const ParamLayout& layout = model.layout();
  const ParamLayout full = whole_model_layout(cfg.model);
  HostState state;  // whole tensors, on job rank 0
  ResumePoint point;
  if (grid.job().rank() == 0) point = choose_and_load(cfg, full, state, log);
  share_point(point, state.adam_steps, grid.job());
  if (point.checkpoint.empty()) return point;

  std::vector<float> params = share_of_whole(cfg.model, full, layout, grid, state.params);
  params.resize(size_t(layout.storage));
  grid.data().broadcast(params.data(), layout.storage * int64_t(sizeof(float)), 0);
  std::vector<float> staging;
  std::copy(params.begin(), params.end(), host_buffer_to_overwrite(model.params, staging));
  commit_host_buffer(model.params, staging);
  model.params_updated();
  scatter_shards(layout, grid.data(), share_of_whole(cfg.model, full, layout, grid, state.m), opt.first_moment());
  scatter_shards(layout, grid.data(), share_of_whole(cfg.model, full, layout, grid, state.v), opt.second_moment());
  opt.set_steps_taken(state.adam_steps);
  log << "resume: " << point.checkpoint << ": continuing after step " << point.step << "\n";
  return point;
}

void set_aside_later_steps(const std::string& run_dir, int64_t step, std::ostream& log) {
  set_aside_metrics(run_dir, step, log);
  set_aside_checkpoints(run_dir, step, log);
}

template <class Model, class Optimizer>
void write_checkpoint(const Config& cfg, Model& model, Optimizer& opt, const ParallelGrid& grid, int64_t step,
                      LoaderCursor cursor, std::ostream& log) {
  const auto start = std::chrono::steady_clock::now();
  const ParamLayout& layout = model.layout();
  const ParamLayout full = whole_model_layout(cfg.model);
  // The master weights are current in this rank's ZeRO-1 shard only (the bf16 gather of the
  // matrices: trainer/data_parallel.h): they are gathered from the shards, like the moments.
  const ParamShard shard = shard_params(layout, grid.data().rank(), grid.data().size());
  std::vector<float> staging, params_shard(size_t(shard.length));
  full_to_shard(shard, host_buffer(model.params, staging), params_shard.data());
  const std::vector<float> p_share = gather_shards(layout, grid.data(), params_shard);
  const std::vector<float> m_share = gather_shards(layout, grid.data(), opt.first_moment());
  const std::vector<float> v_share = gather_shards(layout, grid.data(), opt.second_moment());
  const std::vector<float> params = whole_of_shares(cfg.model, full, layout, grid, p_share.data());
  const std::vector<float> m = whole_of_shares(cfg.model, full, layout, grid, m_share.data());
  const std::vector<float> v = whole_of_shares(cfg.model, full, layout, grid, v_share.data());
  if (grid.job().rank() != 0) return;  // job rank 0 writes
  const std::string path = checkpoint_path(cfg.run.dir, step);
  const CheckpointMeta meta{step, opt.steps_taken(), cursor.rows, cfg.train.seed, cfg.resolved, gemm_choices(model)};
  save_checkpoint(path, full, {params.data(), m.data(), v.data()}, meta);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char line[96];
  std::snprintf(line, sizeof line, " (%.1f MiB, %.2f s)",
                double(fs::file_size(path)) / double(1 << 20), seconds);
  log << "checkpoint: " << path << line << std::endl;
  prune_checkpoints(cfg.run.dir, cfg.checkpoint.keep, cfg.checkpoint.keep_every);
}

#define HYMBA_INSTANTIATE(Model, Optimizer)                                                          \
  template ResumePoint restore_state<Model, Optimizer>(const Config&, Model&, Optimizer&, const ParallelGrid&, \
                                                       std::ostream&);                                 \
  template void write_checkpoint<Model, Optimizer>(const Config&, Model&, Optimizer&, const ParallelGrid&,     \
                                                   int64_t, LoaderCursor, std::ostream&);
HYMBA_INSTANTIATE(HymbaModel<float>, AdamW<float>)
#ifdef HYMBA_HAVE_CUDA
HYMBA_INSTANTIATE(CudaHymbaModel, CudaAdamW)
HYMBA_INSTANTIATE(CudaBf16HymbaModel, CudaAdamW)
#endif
#undef HYMBA_INSTANTIATE

}  // namespace hymba
