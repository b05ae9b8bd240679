// The run configuration: YAML files in configs/, validated key by key.
//
// A file may name `base: other.yaml` (relative to itself); its keys override the base's, section by
// section. Command-line overrides `section.key=value` (value parsed as YAML) apply last. Every key
// is checked: an unknown key, a wrong type or an impossible value stops with a hymba::Error naming
// the file (or "command line") and the key, e.g.
//   configs/tiny.yaml: model.num_attention_heads: 5 does not divide hidden_size 64
// Input paths (data.train, data.val, data.tokenizer) are relative to the file that sets them (or
// to the working directory when set on the command line) and are stored absolute after loading,
// so a saved `resolved` text names the same files from anywhere. Output paths (run.dir,
// data.cache_dir) are relative to the working directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hymba {

// dt_proj bias initialisation (HYMBA_SPEC §6): `mamba` = inverse-softplus of dt drawn log-uniform
// in [dt_min, dt_max]; `zero` = the official HF constructor's zeros.
enum class DtInit { mamba, zero };

// What backward recomputes instead of keeping from forward (train.recompute), each level
// including the ones before it: `norms` the normalised tensors (input and MLP norm outputs, the
// fusion average), `mlp` also the MLP's gate, up and SwiGLU output, `all` every activation of a
// layer but its input (a whole layer forward again, less its last GEMM).
enum class Recompute { none, norms, mlp, all };
const char* recompute_name(Recompute r);

// Model keys use the official HF config.json names (HYMBA_SPEC §4) so export is a rename-free copy.
struct ModelConfig {
  int64_t hidden_size = 0;          // H
  int64_t num_hidden_layers = 0;    // L
  int64_t num_attention_heads = 0;  // nh
  int64_t num_key_value_heads = 0;  // nkv
  int64_t intermediate_size = 0;    // I (MLP)
  int64_t vocab_size = 0;           // V
  int64_t mamba_expand = 2;         // E = mamba_expand · H
  int64_t mamba_d_state = 16;       // N
  int64_t mamba_d_conv = 4;         // K
  int64_t mamba_dt_rank = 0;        // R; YAML `auto` (the default) means ceil(H / 16). load_config
                                    // resolves auto; a config built in code must set it.
  int64_t num_memory_tokens = 0;    // M (meta tokens)
  int64_t sliding_window = 0;       // W
  std::vector<int64_t> global_attn_idx;              // layers with full causal attention
  std::vector<std::vector<int64_t>> kv_reuse_group;  // first = producer, rest = consumers
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::string rope_type = "ntk";  // "ntk" (static NTK base, HYMBA_SPEC §2.2) or "default"
  int64_t max_position_embeddings = 8192;
  int64_t orig_max_position_embeddings = 2048;
  int64_t pad_token_id = 0;  // embedding row whose lookup gradient is zero
  int64_t bos_token_id = 1;
  int64_t eos_token_id = 2;
  double initializer_range = 0.02;
  DtInit dt_init = DtInit::mamba;
  double dt_min = 0.001, dt_max = 0.1;  // range of the `mamba` dt init
  // Which heads each layer runs (an ablation switch; the official model is hybrid):
  // hybrid = attention and Mamba heads averaged (HYMBA_SPEC §2.7), attention = attention heads
  // only, mamba = Mamba heads only. Only hybrid exports to the official format.
  std::string mixer = "hybrid";
  // Which attention kernels the CUDA backend runs (the same math; an ablation and debugging
  // switch, not part of the exported model): native = the fastest the activation type and head
  // sizes allow (flash kernels on tensor cores for bf16 with q/k heads of 64 and v heads of 128,
  // else simple); simple = the first GPU path's kernels (CUDA cores, any type and size), the
  // reference the fast ones are checked against. The CPU backend runs the CPU reference always.
  std::string attention_backend = "native";

  int64_t head_dim() const { return hidden_size / num_attention_heads; }      // hd (q/k)
  int64_t inner_size() const { return mamba_expand * hidden_size; }           // E
  int64_t v_head_dim() const { return inner_size() / num_attention_heads; }   // vd
};

struct TrainConfig {
  int64_t steps = 100;        // optimizer steps
  int64_t batch_size = 8;     // rows per micro-batch, over all data-parallel ranks together
  int64_t seq_len = 64;       // T, text tokens per row (the model sees M + T positions)
  int64_t grad_accum = 1;     // micro-batches per optimizer step
  uint64_t seed = 1234;       // initialisation and data order
  std::string device = "auto";      // auto | cpu | cuda
  std::string precision = "fp32";   // fp32 | bf16 (bf16 needs the CUDA backend)
  Recompute recompute = Recompute::none;  // none | norms | mlp | all: memory for time
  // How the GPU picks each GEMM shape's cuBLASLt algorithm: heuristic = cuBLASLt's first
  // candidate (the same in every process, so two fresh runs give the same bits); timed = the
  // fastest of its first candidates, timed on the first step (faster; timings, and so bits, can
  // differ between fresh runs). Checkpoints keep the algorithms: a resumed run computes with the
  // same ones either way.
  std::string gemm_algorithms = "heuristic";
  int64_t log_every = 10;     // print and record every N steps (and the first and last)
  int64_t threads = 0;        // CPU threads; 0 = all cores (OMP default)
  // none: start fresh; auto: continue from the newest complete checkpoint in run.dir (start
  // fresh if there is none); anything else: the path of a checkpoint file to continue from.
  std::string resume = "none";
};

struct OptimConfig {
  double lr = 3e-4;             // peak learning rate
  double min_lr = 3e-5;         // floor of the cosine decay
  int64_t warmup_steps = 10;    // linear warmup from 0 to lr
  double weight_decay = 0.1;    // AdamW decoupled decay
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double grad_clip = 1.0;       // max global gradient norm; 0 disables clipping
  // Parameter kinds exempt from weight decay: any of norm, bias, embedding, meta, ssm
  // (A_log and D). Weight matrices and the conv kernel are always decayed.
  std::vector<std::string> no_decay = {"norm", "bias", "embedding", "meta", "ssm"};
};

struct DataConfig {
  // text: train/val name text corpora (files or folders; plain, gzip or xz; JSONL by name), which
  //       are tokenized with `tokenizer` into shards under `cache_dir` on first use.
  // shards: train/val name prepared shards (a folder, a file, or a folder/prefix- pattern).
  // recall: the synthetic associative-recall task (src/eval/recall.h), generated; validation
  //       scores recall accuracy on held-out sequences.
  std::string format = "text";
  std::string train;             // required for text and shards
  std::string val;               // optional: validation loss is reported when set
  std::string tokenizer;         // tokenizer folder; required for text, checked against shards
  std::string cache_dir = ".cache/hymba";  // where text corpora are prepared (working directory)
};

struct CheckpointConfig {
  int64_t every = 0;       // write a checkpoint every N optimizer steps (0 = never; also at the end)
  int64_t keep = 3;        // keep the newest N checkpoints ...
  int64_t keep_every = 0;  // ... plus every checkpoint whose step is a multiple of this (0 = none)
};

struct EvalConfig {
  int64_t every = 0;    // validation loss every N steps (0 = only after training); needs data.val
  int64_t batches = 8;  // validation batches per evaluation
};

// Multi-process runs (mpirun -np N hymba-train ...): N = data-parallel × tensor-parallel ranks.
struct ParallelConfig {
  int64_t tp = 1;            // tensor-parallel ranks per model replica (DESIGN.md §5)
  double timeout_s = 300;    // a collective waiting longer than this aborts the job
};

struct RunConfig {
  std::string dir = "runs/default";  // output folder: metrics.jsonl, the resolved config
};

struct Config {
  ModelConfig model;
  TrainConfig train;
  OptimConfig optim;
  DataConfig data;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  ParallelConfig parallel;
  RunConfig run;
  std::string path;      // the config file given
  std::string resolved;  // the merged configuration as YAML text (bases and overrides applied)
};

// Loads `path` (following `base:`), applies `overrides` ("section.key=value") and validates.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// The same from YAML text (a run's saved `resolved` config, e.g. from a checkpoint); `origin` names
// the text in messages, and relative paths start at the working directory.
Config load_config_text(const std::string& text, const std::string& origin,
                        const std::vector<std::string>& overrides = {});

// Validation alone, for configs built in code (tests). `where` names the origin in messages.
void validate(const Config& c, const std::string& where);

}  // namespace hymba
