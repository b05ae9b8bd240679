// Training checkpoints: one HDF5 file per saved step, in run.dir.
//
//   <run.dir>/checkpoint-00000040.h5
//     /params/<HF name>   float32, the tensor's HF shape: fp32 master weights
//     /adam_m/<HF name>   float32 AdamW first moments    (absent in an imported checkpoint)
//     /adam_v/<HF name>   float32 AdamW second moments   (likewise)
//     /gemm_algorithms    int64 [shapes, 19]: the GEMM algorithms of a GPU run (io/gemm_choices.h),
//                         attribute cublaslt_version; absent in a CPU run's or imported checkpoint
//     attributes on /: format_version, step (optimizer steps done), adam_steps, loader_rows (the
//                      data loader cursor), seed, config (the resolved YAML text of the run)
//
// Tensors are stored by name and shape, not as one flat buffer, so a checkpoint does not depend on
// the in-memory layout (padding, and later tensor-parallel sharding). Every dataset carries HDF5's
// Fletcher-32 checksum, so a flipped byte is found on read. A checkpoint is written to a
// temporary name, flushed and renamed: a crash never leaves a half checkpoint under a final name.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "io/gemm_choices.h"
#include "model/param_layout.h"

namespace hymba {

inline constexpr int64_t kCheckpointFormatVersion = 1;

struct CheckpointMeta {
  int64_t step = 0;
  int64_t adam_steps = 0;
  uint64_t loader_rows = 0;
  uint64_t seed = 0;
  std::string config;  // resolved YAML of the run that wrote it
  std::optional<GemmChoices> gemm;  // the GEMM algorithms the run computed with (GPU runs)
};

// What a checkpoint holds, as flat buffers with `layout` (padding zero). m and v may be null when
// saving (then no optimizer state is written, as for an imported model).
struct CheckpointTensors {
  const float* params = nullptr;
  const float* adam_m = nullptr;
  const float* adam_v = nullptr;
};

// Writes `path` (through path + ".tmp"). Errors name the file.
void save_checkpoint(const std::string& path, const ParamLayout& layout, const CheckpointTensors& t,
                     const CheckpointMeta& meta);

// Reads the metadata only (cheap: no tensor data), validating the format version.
CheckpointMeta read_checkpoint_meta(const std::string& path);

// Reads every tensor of `layout` into the buffers (m/v may be null to skip them; when given but
// the file has no optimizer state, they are zero-filled and has_optimizer_state() says so).
// A missing tensor, a wrong shape, a checksum failure or a truncated file is an Error naming the
// file and the tensor.
struct LoadedCheckpoint {
  CheckpointMeta meta;
  bool has_optimizer_state = false;
};
LoadedCheckpoint load_checkpoint(const std::string& path, const ParamLayout& layout, float* params,
                                 float* adam_m, float* adam_v);

// Checkpoint files in `run_dir`, oldest step first (temporary files excluded).
std::vector<std::string> list_checkpoints(const std::string& run_dir);
std::string checkpoint_path(const std::string& run_dir, int64_t step);

// Deletes checkpoints beyond the newest `keep`, except those whose step is a multiple of
// keep_every (when > 0).
void prune_checkpoints(const std::string& run_dir, int64_t keep, int64_t keep_every);

}  // namespace hymba
