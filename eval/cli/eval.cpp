// hymba-eval CHECKPOINT [options]: validation loss and perplexity, associative-recall accuracy at
// several context lengths, and text generation, for a checkpoint of the CPU model. The model's
// configuration comes from the checkpoint itself (the resolved config of the run that wrote it).
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/cli.h"
#include "core/error.h"
#include "core/device.h"
#include "core/files.h"
#include "core/json.h"
#include "core/utf8.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "eval/generate.h"
#include "eval/perplexity.h"
#include "eval/recall.h"
#include "io/checkpoint.h"
#include "io/hf_model.h"
#include "model/host_access.h"
#include "model/hymba_model.h"
#ifdef HYMBA_HAVE_CUDA
#include "model/cuda_model.h"
#endif
#include "model/layer_plan.h"
#include "model/model_info.h"
#include "model/param_layout.h"

namespace {

namespace fs = std::filesystem;
using namespace hymba;

const char* kUsage =
    "usage: hymba-eval CHECKPOINT [--val SHARDS] [--batches N] [--recall]\n"
    "                  [--recall-lengths L,...] [--generate PROMPT] [options]\n"
    "  CHECKPOINT            a checkpoint file (run.dir/checkpoint-NNNNNNNN.h5); the model's\n"
    "                        config is read from it\n"
    "  --val SHARDS          validation loss and perplexity over prepared shards (a folder, a\n"
    "                        file, or folder/prefix-), in order, unshuffled\n"
    "  --batches N           validation batches (default: the run's eval.batches)\n"
    "  --batch-size B        rows per batch for --val and --recall (default: train.batch_size)\n"
    "  --recall              associative-recall accuracy (src/eval/recall.h)\n"
    "  --recall-lengths L,.. row lengths to score, the pairs filling each row (default: the\n"
    "                        run's train.seq_len)\n"
    "  --recall-keys N       distinct keys, ids 3 .. 3+N-1 (default 64; a row of L tokens needs\n"
    "                        (L - 2*queries)/2 of them)\n"
    "  --recall-values N     values, the ids after the keys (default 64)\n"
    "  --recall-queries N    queries per row (default 8)\n"
    "  --recall-batches N    recall batches per length (default 8)\n"
    "  --recall-seed S       the recall sequences' stream (default: kRecallEvalSeed)\n"
    "  --generate PROMPT     continue PROMPT (after an <|endoftext|>, as a document starts)\n"
    "  --tokenizer DIR       tokenizer for --generate (default: the run's data.tokenizer); with\n"
    "                        --val, the shards must have been made with it\n"
    "  --max-new N           tokens to generate at most (default 64)\n"
    "  --temperature T       0 = greedy (default 1)\n"
    "  --top-k K             keep the K most likely tokens; 0 = all (default 0)\n"
    "  --top-p P             keep the most likely tokens up to probability P (default 1)\n"
    "  --seed S              sampling seed (default 0)\n"
    "  --device D            auto (GPU 0 when there is one, else the CPU), cpu or cuda; the GPU\n"
    "                        evaluates in fp32 (default auto)\n"
    "  --threads N           CPU threads (default: all cores)\n"
    "  --json                one JSON object per result line instead of the report\n";

struct Args {
  std::string checkpoint, val, tokenizer;
  std::optional<std::string> prompt;
  std::optional<int64_t> batches, batch_size;
  bool recall = false, json = false;
  std::vector<int64_t> recall_lengths;
  RecallTask recall_task;  // pairs set per length
  int64_t recall_batches = 8;
  uint64_t recall_seed = kRecallEvalSeed;
  GenerateOptions gen;
  std::string device = "auto";
  int threads = 0;
};

std::vector<int64_t> parse_lengths(const CommandLine& cl, const std::string& option, const std::string& text) {
  std::vector<int64_t> lengths;
  for (size_t pos = 0; pos <= text.size();) {
    const size_t end = std::min(text.find(',', pos), text.size());
    lengths.push_back(cl.parse<int64_t>(option, text.substr(pos, end - pos), 1));
    pos = end + 1;
  }
  return lengths;
}

Args parse_args(int argc, char** argv) {
  Args a;
  CommandLine cl(argc, argv, kUsage);
  for (std::string arg; cl.next(arg);) {
    if (arg == "--val") {
      a.val = cl.value();
    } else if (arg == "--batches") {
      a.batches = cl.number<int64_t>(1);
    } else if (arg == "--batch-size") {
      a.batch_size = cl.number<int64_t>(1);
    } else if (arg == "--recall") {
      a.recall = true;
    } else if (arg == "--recall-lengths") {
      a.recall = true;
      a.recall_lengths = parse_lengths(cl, arg, cl.value());
    } else if (arg == "--recall-keys") {
      a.recall_task.num_keys = cl.number<int64_t>(1);
    } else if (arg == "--recall-values") {
      a.recall_task.num_values = cl.number<int64_t>(1);
    } else if (arg == "--recall-queries") {
      a.recall_task.queries = cl.number<int64_t>(1);
    } else if (arg == "--recall-batches") {
      a.recall_batches = cl.number<int64_t>(1);
    } else if (arg == "--recall-seed") {
      a.recall_seed = cl.number<uint64_t>(0);
    } else if (arg == "--generate") {
      a.prompt = cl.value();
    } else if (arg == "--tokenizer") {
      a.tokenizer = cl.value();
    } else if (arg == "--max-new") {
      a.gen.max_new_tokens = cl.number<int64_t>(1);
    } else if (arg == "--temperature") {
      a.gen.sampling.temperature = cl.number<double>(0.0);
    } else if (arg == "--top-k") {
      a.gen.sampling.top_k = cl.number<int64_t>(0);
    } else if (arg == "--top-p") {
      a.gen.sampling.top_p = cl.number<double>(0.0);
    } else if (arg == "--seed") {
      a.gen.seed = cl.number<uint64_t>(0);
    } else if (arg == "--device") {
      a.device = cl.value();
      if (a.device != "auto" && a.device != "cpu" && a.device != "cuda") {
        cl.usage_error("--device: \"" + a.device + "\" is not auto, cpu or cuda");
      }
    } else if (arg == "--threads") {
      a.threads = cl.number<int>(1);
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg.starts_with("--")) {
      cl.usage_error("unknown option " + arg);
    } else if (a.checkpoint.empty()) {
      a.checkpoint = arg;
    } else {
      cl.usage_error("one CHECKPOINT only; unexpected \"" + arg + "\"");
    }
  }
  if (a.checkpoint.empty()) cl.usage_error("CHECKPOINT is required");
  a.recall_task.value_base = a.recall_task.key_base + a.recall_task.num_keys;
  if (a.val.empty() && !a.recall && !a.prompt) {
    cl.usage_error("nothing to do: give --val, --recall and/or --generate");
  }
  return a;
}

// Generated text may end inside a multi-byte character, or be any bytes at all: JSON needs
// UTF-8, so invalid bytes become U+FFFD.
std::string valid_utf8(const std::string& bytes) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  for (size_t i = 0; i < bytes.size();) {
    char32_t cp = 0;
    const int n = decode_utf8(p + i, bytes.size() - i, cp);
    append_utf8(out, n ? cp : U'\uFFFD');
    i += n ? size_t(n) : 1;
  }
  return out;
}

std::string number(double v) {
  char s[32];
  std::snprintf(s, sizeof s, "%.9g", v);
  return s;
}

// Holds the checkpoint's parameters once and builds models of whatever batch shape a result needs.
struct Checkpoint {
  Config cfg;
  CheckpointMeta meta;
  std::vector<float> params;  // [layout.storage]

  explicit Checkpoint(const std::string& path) {
    meta = read_checkpoint_meta(path);
    cfg = checkpoint_config(path, meta);
    const ParamLayout layout = build_param_layout(cfg.model, plan_layers(cfg.model));
    params.resize(static_cast<size_t>(layout.storage));
    load_checkpoint(path, layout, params.data(), nullptr, nullptr);
  }

  template <class Model>
  std::unique_ptr<Model> model(int64_t B, int64_t T) const {
    auto m = std::make_unique<Model>(cfg.model, B, T);
    std::vector<float> staging;  // where the model's parameters live in device memory
    std::copy(params.begin(), params.end(), host_buffer_to_overwrite(m->params, staging));
    commit_host_buffer(m->params, staging);
    m->params_updated();
    return m;
  }
};

// Model: HymbaModel<float> (CPU) or CudaHymbaModel (GPU, fp32).
template <class Model>
void run_validation(const Args& a, const Checkpoint& ck, int64_t B) {
  const int64_t T = ck.cfg.train.seq_len;
  const std::string identity = a.tokenizer.empty() ? "" : Tokenizer::load(a.tokenizer).identity();
  const auto model = ck.model<Model>(B, T);
  const int64_t batches = a.batches.value_or(ck.cfg.eval.batches);
  const PerplexityResult r = evaluate_perplexity(*model, find_shards(a.val), batches, identity);
  if (a.json) {
    std::cout << "{\"eval\": \"validation\", \"step\": " << ck.meta.step
              << ", \"shards\": " << json_string(a.val) << ", \"batches\": " << r.batches
              << ", \"tokens\": " << r.tokens << ", \"loss\": " << number(r.loss)
              << ", \"perplexity\": " << number(r.perplexity()) << "}\n";
  } else {
    std::printf("validation: loss %.4f  perplexity %.2f  (%lld batches x %lld rows x %lld tokens)"
                "\n", r.loss, r.perplexity(), (long long)r.batches, (long long)B, (long long)T);
  }
}

template <class Model>
void run_recall(const Args& a, const Checkpoint& ck, int64_t B) {
  std::vector<int64_t> lengths = a.recall_lengths;
  if (lengths.empty()) lengths = {ck.cfg.train.seq_len};
  const auto model = ck.model<Model>(B, *std::max_element(lengths.begin(), lengths.end()));
  for (const int64_t L : lengths) {
    const RecallTask task = recall_task_for_row(a.recall_task, L);
    const RecallResult r = evaluate_recall(*model, task, a.recall_batches, a.recall_seed);
    if (a.json) {
      std::cout << "{\"eval\": \"recall\", \"step\": " << ck.meta.step << ", \"length\": " << L
                << ", \"pairs\": " << task.pairs << ", \"queries\": " << task.queries
                << ", \"answers\": " << r.answers << ", \"accuracy\": " << number(r.accuracy())
                << ", \"loss\": " << number(r.loss()) << "}\n";
    } else {
      std::printf("recall: length %4lld (%lld pairs, %lld queries): accuracy %.4f  loss %.4f"
                  "  (%lld answers; chance %.4f)\n",
                  (long long)L, (long long)task.pairs, (long long)task.queries, r.accuracy(),
                  r.loss(), (long long)r.answers, 1.0 / double(task.num_values));
    }
  }
}

template <class Model>
void run_generation(const Args& a, const Checkpoint& ck) {
  const std::string dir = a.tokenizer.empty() ? ck.cfg.data.tokenizer : a.tokenizer;
  if (dir.empty()) fail("--generate needs --tokenizer (the run's config names none)");
  const Tokenizer tok = Tokenizer::load(dir);
  if (tok.vocab_size() > ck.cfg.model.vocab_size) {
    fail(dir, ": ", tok.vocab_size(), " ids do not fit the model's vocabulary of ",
         ck.cfg.model.vocab_size);
  }
  std::vector<int32_t> prompt;
  if (tok.eot_id() >= 0) prompt.push_back(tok.eot_id());  // training documents follow one
  tok.encode(*a.prompt, prompt);
  GenerateOptions options = a.gen;
  options.eot_id = tok.eot_id();
  const auto model = ck.model<Model>(1, ck.cfg.train.seq_len);
  const Generation g = generate(*model, prompt, options);
  const std::string text = tok.decode(g.tokens);
  const SamplingOptions& s = options.sampling;
  if (a.json) {
    std::cout << "{\"eval\": \"generate\", \"step\": " << ck.meta.step
              << ", \"prompt\": " << json_string(valid_utf8(*a.prompt))
              << ", \"text\": " << json_string(valid_utf8(text))
              << ", \"new_tokens\": " << g.tokens.size() << ", \"stop\": \""
              << stop_reason_name(g.stop) << "\", \"temperature\": " << number(s.temperature)
              << ", \"top_k\": " << s.top_k << ", \"top_p\": " << number(s.top_p)
              << ", \"seed\": " << options.seed << "}\n";
  } else {
    std::printf("generate: temperature %g, top-k %lld, top-p %g, seed %llu; %zu new tokens, "
                "stopped at %s\n%s%s\n",
                s.temperature, (long long)s.top_k, s.top_p, (unsigned long long)options.seed,
                g.tokens.size(), stop_reason_name(g.stop), a.prompt->c_str(), text.c_str());
  }
}

template <class Model>
void run_all(const Args& a, const Checkpoint& ck, int64_t B) {
  if (!a.val.empty()) run_validation<Model>(a, ck, B);
  if (a.recall) run_recall<Model>(a, ck, B);
  if (a.prompt) run_generation<Model>(a, ck);
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  try {
    if (a.threads > 0) omp_set_num_threads(a.threads);
    check_sampling_options(a.gen.sampling);  // before the (possibly long) checkpoint load
    const Checkpoint ck(a.checkpoint);
    const int64_t B = a.batch_size.value_or(ck.cfg.train.batch_size);
    if (!a.json) {
      std::printf("checkpoint: %s (step %lld, %lld parameters)\n", a.checkpoint.c_str(),
                  (long long)ck.meta.step,
                  (long long)describe_model(ck.cfg.model, ck.cfg.train.seq_len).parameters);
    }
    if (use_gpu(a.device, "--device")) {
#ifdef HYMBA_HAVE_CUDA
      run_all<CudaHymbaModel>(a, ck, B);
#endif
    } else {
      run_all<HymbaModel<float>>(a, ck, B);
    }
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
