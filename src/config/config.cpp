// Loading runs in four steps: gather the settings (file chain, then overrides), each a YAML value
// with the file that set it; read each into the Config through the key table (type checks); run
// the value checks, the same ones validate() runs; emit Config::resolved from the key table.
// Value checks see only the struct, so they name a key, and the loader maps that key to a file.

#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <type_traits>

#include "config/yaml_reader.h"
#include "core/error.h"

namespace hymba {

const char* recompute_name(Recompute r) {
  switch (r) {
    case Recompute::none: return "none";
    case Recompute::norms: return "norms";
    case Recompute::mlp: return "mlp";
    case Recompute::all: return "all";
  }
  return "?";
}

namespace {

namespace fs = std::filesystem;
using detail::concat;

// ---- value rules --------------------------------------------------------------------------------
// A rule returns "" when a value is fine, else what is wrong, starting with the value itself, so
// that every message names the offending value: "0 must be >= 1".

auto at_least(auto lo) {
  return [lo](const auto& v) { return v >= lo ? std::string() : concat(v, " must be >= ", lo); };
}

auto above(auto lo) {
  return [lo](const auto& v) { return v > lo ? std::string() : concat(v, " must be > ", lo); };
}

// Adam's moment decay rates: at 1 a moment never forgets its first value.
auto fraction() {
  return [](double v) { return v >= 0 && v < 1 ? std::string() : concat(v, " must be in [0, 1)"); };
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

std::string not_one_of(const std::string& v, const std::vector<std::string>& options) {
  if (std::find(options.begin(), options.end(), v) != options.end()) return "";
  return concat('"', v, "\" must be one of ", join(options));
}

auto one_of(std::vector<std::string> options) {
  return [options](const std::string& v) { return not_one_of(v, options); };
}

auto each_one_of(std::vector<std::string> options) {
  return [options](const std::vector<std::string>& values) {
    for (const std::string& v : values)
      if (std::string what = not_one_of(v, options); !what.empty()) return what;
    return std::string();
  };
}

auto non_empty() {
  return [](const std::string& v) { return v.empty() ? std::string("must not be empty") : ""; };
}

// ---- the keys -----------------------------------------------------------------------------------
// One row per key: how to read it (type check), write it (for Config::resolved) and check it alone.

using yaml::read;
using yaml::write;

void read(const YAML::Node& n, DtInit& v) {
  if (yaml::is_word(n, "mamba")) v = DtInit::mamba;
  else if (yaml::is_word(n, "zero")) v = DtInit::zero;
  else fail("expected mamba or zero, got ", yaml::show(n));
}

void write(YAML::Emitter& out, DtInit v) { out << (v == DtInit::mamba ? "mamba" : "zero"); }

void read(const YAML::Node& n, Recompute& v) {
  for (const Recompute r : {Recompute::none, Recompute::norms, Recompute::mlp, Recompute::all}) {
    if (yaml::is_word(n, recompute_name(r))) {
      v = r;
      return;
    }
  }
  fail("expected none, norms, mlp or all, got ", yaml::show(n));
}

void write(YAML::Emitter& out, Recompute v) { out << recompute_name(v); }

struct Field {
  std::string section, key;
  std::function<void(Config&, const YAML::Node&)> read;  // throws Error("expected ...")
  std::function<void(YAML::Emitter&, const Config&)> write;
  std::function<std::string(const Config&)> check;  // the key's own rule, or empty
  std::string name() const { return section + "." + key; }
};

template <class S, class T>
Field field(const char* section, const char* key, S Config::*part, T S::*member,
            std::function<std::string(const std::type_identity_t<T>&)> rule = nullptr) {
  Field f{section, key, [=](Config& c, const YAML::Node& n) { read(n, c.*part.*member); },
          [=](YAML::Emitter& out, const Config& c) { write(out, c.*part.*member); }, nullptr};
  if (rule) f.check = [=](const Config& c) { return rule(c.*part.*member); };
  return f;
}

// The YAML key is the struct member's name, spelled once.
#define HYMBA_FIELD(section, key, ...) \
  field(#section, #key, &Config::section, &decltype(Config::section)::key __VA_OPT__(, ) __VA_ARGS__)

// `auto` leaves the value alone here; load_config resolves it once hidden_size is final.
void read_dt_rank(Config& c, const YAML::Node& n) {
  if (yaml::is_word(n, "auto")) return;
  try {
    read(n, c.model.mamba_dt_rank);
  } catch (const Error&) {
    fail("expected an integer or auto, got ", yaml::show(n));
  }
}

Field with_reader(Field f, std::function<void(Config&, const YAML::Node&)> reader) {
  f.read = std::move(reader);
  return f;
}

const std::vector<Field>& fields() {
  static const std::vector<Field> table = {
      HYMBA_FIELD(model, hidden_size, at_least(1)),
      HYMBA_FIELD(model, num_hidden_layers, at_least(1)),
      HYMBA_FIELD(model, num_attention_heads, at_least(1)),
      HYMBA_FIELD(model, num_key_value_heads, at_least(1)),
      HYMBA_FIELD(model, intermediate_size, at_least(1)),
      HYMBA_FIELD(model, vocab_size, at_least(2)),
      HYMBA_FIELD(model, mamba_expand, at_least(1)),
      HYMBA_FIELD(model, mamba_d_state, at_least(1)),
      HYMBA_FIELD(model, mamba_d_conv, at_least(1)),
      with_reader(HYMBA_FIELD(model, mamba_dt_rank, at_least(1)), read_dt_rank),
      HYMBA_FIELD(model, num_memory_tokens, at_least(0)),
      HYMBA_FIELD(model, sliding_window, at_least(1)),
      HYMBA_FIELD(model, global_attn_idx),  // layer indices: see relations()
      HYMBA_FIELD(model, kv_reuse_group),
      HYMBA_FIELD(model, rms_norm_eps, above(0)),
      HYMBA_FIELD(model, rope_theta, above(0)),
      HYMBA_FIELD(model, rope_type, one_of({"ntk", "default"})),
      HYMBA_FIELD(model, max_position_embeddings),
      HYMBA_FIELD(model, orig_max_position_embeddings, at_least(1)),
      HYMBA_FIELD(model, pad_token_id),  // token ids: see relations()
      HYMBA_FIELD(model, bos_token_id),
      HYMBA_FIELD(model, eos_token_id),
      HYMBA_FIELD(model, initializer_range, above(0)),
      HYMBA_FIELD(model, dt_init),  // an enum: the reader admits only its values
      HYMBA_FIELD(model, dt_min, above(0)),
      HYMBA_FIELD(model, dt_max),
      HYMBA_FIELD(model, mixer, one_of({"hybrid", "attention", "mamba"})),
      HYMBA_FIELD(model, attention_backend, one_of({"native", "simple"})),
      HYMBA_FIELD(train, steps, at_least(1)),
      HYMBA_FIELD(train, batch_size, at_least(1)),
      HYMBA_FIELD(train, seq_len, at_least(1)),
      HYMBA_FIELD(train, grad_accum, at_least(1)),
      HYMBA_FIELD(train, seed),
      HYMBA_FIELD(train, device, one_of({"auto", "cpu", "cuda"})),
      HYMBA_FIELD(train, precision, one_of({"fp32", "bf16"})),
      HYMBA_FIELD(train, recompute),  // an enum: the reader admits only its values
      HYMBA_FIELD(train, gemm_algorithms, one_of({"timed", "heuristic"})),
      HYMBA_FIELD(train, log_every, at_least(1)),
      HYMBA_FIELD(train, threads, at_least(0)),
      HYMBA_FIELD(train, resume, non_empty()),
      HYMBA_FIELD(optim, lr, above(0)),
      HYMBA_FIELD(optim, min_lr, at_least(0)),
      HYMBA_FIELD(optim, warmup_steps, at_least(0)),
      HYMBA_FIELD(optim, weight_decay, at_least(0)),
      HYMBA_FIELD(optim, beta1, fraction()),
      HYMBA_FIELD(optim, beta2, fraction()),
      HYMBA_FIELD(optim, eps, above(0)),
      HYMBA_FIELD(optim, grad_clip, at_least(0)),
      HYMBA_FIELD(optim, no_decay, each_one_of({"norm", "bias", "embedding", "meta", "ssm"})),
      HYMBA_FIELD(data, format, one_of({"text", "shards", "recall"})),
      HYMBA_FIELD(data, train),      // required for text and shards: see relations()
      HYMBA_FIELD(data, val),        // optional
      HYMBA_FIELD(data, tokenizer),  // required for text: see relations()
      HYMBA_FIELD(data, cache_dir, non_empty()),
      HYMBA_FIELD(checkpoint, every, at_least(0)),
      HYMBA_FIELD(checkpoint, keep, at_least(1)),
      HYMBA_FIELD(checkpoint, keep_every, at_least(0)),
      HYMBA_FIELD(eval, every, at_least(0)),
      HYMBA_FIELD(eval, batches, at_least(1)),
      HYMBA_FIELD(parallel, tp, at_least(1)),
      HYMBA_FIELD(parallel, timeout_s, above(0)),
      HYMBA_FIELD(run, dir, non_empty()),
  };
  return table;
}

#undef HYMBA_FIELD

// Keys naming files relative to the config file that sets them.
const std::set<std::string> kRelativePaths = {"data.train", "data.val", "data.tokenizer"};

// ---- checks across keys -------------------------------------------------------------------------
// They run after every key passed its own rule, so they may divide by a head count, index by a
// layer count, and so on.

struct Relation {
  std::string key;                // the key checked, named in the message
  std::vector<std::string> also;  // the other keys it reads: the loader blames the latest file
  std::function<std::string(const Config&)> check;
};

std::string show_list(const std::vector<int64_t>& v) {
  std::string out;
  for (int64_t x : v) out += (out.empty() ? "" : ", ") + std::to_string(x);
  return "[" + out + "]";
}

std::string outside_layers(int64_t layer, int64_t num_layers) {
  if (layer >= 0 && layer < num_layers) return "";
  return concat("layer ", layer, " is outside [0, ", num_layers, ") (num_hidden_layers ", num_layers, ")");
}

std::string check_global_layers(const Config& c) {
  std::set<int64_t> seen;
  for (int64_t l : c.model.global_attn_idx) {
    if (std::string what = outside_layers(l, c.model.num_hidden_layers); !what.empty()) return what;
    if (!seen.insert(l).second) return concat("layer ", l, " appears twice");
  }
  return "";
}

// Groups are runs of consecutive layers (HYMBA_SPEC §2.5), producer first: the model's backward
// relies on it to serve every group with one dK/dV accumulator (model/layer_plan.h).
std::string check_kv_groups(const Config& c) {
  const auto& globals = c.model.global_attn_idx;
  std::set<int64_t> seen;
  for (const std::vector<int64_t>& g : c.model.kv_reuse_group) {
    const std::string group = "group " + show_list(g);
    if (g.size() < 2) return group + " has fewer than 2 layers";
    for (size_t j = 0; j < g.size(); ++j) {
      const int64_t l = g[j];
      if (std::string what = outside_layers(l, c.model.num_hidden_layers); !what.empty())
        return group + ": " + what;
      if (j > 0 && l != g[j - 1] + 1) return group + " is not consecutive layers in ascending order";
      if (std::find(globals.begin(), globals.end(), l) != globals.end())
        return concat(group, " contains global layer ", l);
      if (!seen.insert(l).second) return concat(group, ": layer ", l, " is already in another group");
    }
  }
  return "";
}

Relation token_id(const char* key, int64_t ModelConfig::*id) {
  return {key, {"model.vocab_size"}, [id](const Config& c) {
            const int64_t v = c.model.*id, vocab = c.model.vocab_size;
            return v >= 0 && v < vocab ? std::string()
                                       : concat(v, " is outside [0, ", vocab, ") (vocab_size ", vocab, ")");
          }};
}

const std::vector<Relation>& relations() {
  static const std::vector<Relation> table = {
      {"model.num_attention_heads", {"model.hidden_size"},
       [](const Config& c) {
         const ModelConfig& m = c.model;
         return m.hidden_size % m.num_attention_heads == 0
                    ? std::string()
                    : concat(m.num_attention_heads, " does not divide hidden_size ", m.hidden_size);
       }},
      // Then nh also divides E = mamba_expand·H, so v_head_dim = E/nh needs no check of its own.
      {"model.num_attention_heads", {"model.hidden_size"},
       [](const Config& c) {  // RoPE rotates q/k channels in pairs
         return c.model.head_dim() % 2 == 0
                    ? std::string()
                    : concat(c.model.num_attention_heads, " heads give head_dim ", c.model.head_dim(),
                             ", which RoPE needs even");
       }},
      {"model.num_key_value_heads", {"model.num_attention_heads"},
       [](const Config& c) {
         const ModelConfig& m = c.model;
         return m.num_attention_heads % m.num_key_value_heads == 0
                    ? std::string()
                    : concat(m.num_key_value_heads, " does not divide num_attention_heads ",
                             m.num_attention_heads);
       }},
      {"model.global_attn_idx", {"model.num_hidden_layers"}, check_global_layers},
      {"model.kv_reuse_group", {"model.mixer"},
       // A group promises layers that share KV, which a Mamba-only model has not. global_attn_idx
       // only picks attention masks, so there it is ignored (and sliding_window too).
       [](const Config& c) {
         return c.model.mixer == "mamba" && !c.model.kv_reuse_group.empty()
                    ? std::string("must be empty when mixer is mamba (no attention, no KV to share)")
                    : "";
       }},
      {"model.kv_reuse_group", {"model.num_hidden_layers", "model.global_attn_idx"}, check_kv_groups},
      token_id("model.pad_token_id", &ModelConfig::pad_token_id),
      token_id("model.bos_token_id", &ModelConfig::bos_token_id),
      token_id("model.eos_token_id", &ModelConfig::eos_token_id),
      {"data.train", {"data.format"},
       [](const Config& c) {  // the recall task is generated, every other format reads a corpus
         return c.data.format == "recall" || !c.data.train.empty()
                    ? std::string()
                    : concat("must name the training data when data.format is ", c.data.format);
       }},
      {"eval.every", {"data.val", "data.format"},
       [](const Config& c) {  // the recall task validates on held-out sequences of its own
         return c.eval.every == 0 || !c.data.val.empty() || c.data.format == "recall"
                    ? std::string()
                    : concat(c.eval.every, " needs validation data, but data.val is not set");
       }},
      {"data.tokenizer", {"data.format"},
       [](const Config& c) {  // a text corpus is tokenized on first use
         return c.data.format != "text" || !c.data.tokenizer.empty()
                    ? std::string()
                    : std::string("must name a tokenizer folder when data.format is text");
       }},
      {"model.max_position_embeddings", {"model.orig_max_position_embeddings"},
       [](const Config& c) {
         const ModelConfig& m = c.model;
         return m.max_position_embeddings >= m.orig_max_position_embeddings
                    ? std::string()
                    : concat(m.max_position_embeddings, " must be >= orig_max_position_embeddings ",
                             m.orig_max_position_embeddings);
       }},
      {"model.dt_max", {"model.dt_min"},
       [](const Config& c) {
         return c.model.dt_max > c.model.dt_min
                    ? std::string()
                    : concat(c.model.dt_max, " must be > dt_min ", c.model.dt_min);
       }},
      {"train.precision", {"train.device"},
       [](const Config& c) {
         return c.train.precision == "bf16" && c.train.device == "cpu"
                    ? std::string("bf16 needs the CUDA backend, but device is cpu")
                    : "";
       }},
      {"parallel.tp",
       {"model.num_attention_heads", "model.num_key_value_heads", "model.intermediate_size", "model.mixer"},
       [](const Config& c) {  // tensor parallelism splits heads, channels and widths evenly (DESIGN.md §5)
         const ModelConfig& m = c.model;
         const int64_t tp = c.parallel.tp;
         const auto refuse = [&](const char* key, int64_t value) {
           return concat(tp, " does not divide model.", key, " ", value,
                         " (tensor parallelism gives each rank an equal share of the heads, KV heads, "
                         "Mamba channels and MLP width)");
         };
         if (m.num_attention_heads % tp != 0) return refuse("num_attention_heads", m.num_attention_heads);
         if (m.mixer != "mamba" && m.num_key_value_heads % tp != 0) {
           return refuse("num_key_value_heads", m.num_key_value_heads);
         }
         if (m.intermediate_size % tp != 0) return refuse("intermediate_size", m.intermediate_size);
         return std::string();
       }},
      {"optim.min_lr", {"optim.lr"},
       [](const Config& c) {
         return c.optim.min_lr <= c.optim.lr ? std::string()
                                             : concat(c.optim.min_lr, " must be <= lr ", c.optim.lr);
       }},
  };
  return table;
}

struct Problem {
  std::string key;
  std::vector<std::string> also;
  std::string what;
};

// The one place every value check runs, for validate() and load_config() alike.
std::optional<Problem> first_problem(const Config& c) {
  for (const Field& f : fields()) {
    if (!f.check) continue;
    if (std::string what = f.check(c); !what.empty()) return Problem{f.name(), {}, what};
  }
  for (const Relation& r : relations())
    if (std::string what = r.check(c); !what.empty()) return Problem{r.key, r.also, what};
  return std::nullopt;
}

// ---- names --------------------------------------------------------------------------------------

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);  // Levenshtein, one row at a time
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// " (did you mean x?)" for the closest candidate within two edits, else "".
std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string* best = nullptr;
  size_t best_distance = 3;
  for (const std::string& c : candidates) {
    if (const size_t d = edit_distance(word, c); d < best_distance) {
      best = &c;
      best_distance = d;
    }
  }
  return best ? " (did you mean " + *best + "?)" : "";
}

const std::vector<std::string> kSections = {"model", "train", "optim", "data", "checkpoint", "eval", "parallel", "run"};

// `shown` is what the message names: the section in a file, the whole key on the command line.
void require_section(const std::string& origin, const std::string& section, const std::string& shown) {
  if (std::find(kSections.begin(), kSections.end(), section) == kSections.end())
    fail(origin, ": ", shown, ": unknown section \"", section, "\"", closest(section, kSections));
}

// Suggests a near spelling in the same section, else the same key in another section (model.lr).
void require_key(const std::string& origin, const std::string& name) {
  const size_t dot = name.find('.');
  const std::string section = name.substr(0, dot), key = name.substr(dot + 1);
  std::vector<std::string> same_section;
  std::string elsewhere;
  for (const Field& f : fields()) {
    if (f.name() == name) return;
    if (f.section == section) same_section.push_back(f.name());
    if (f.key == key) elsewhere = " (did you mean " + f.name() + "?)";
  }
  const std::string hint = closest(name, same_section);
  fail(origin, ": ", name, ": unknown key", hint.empty() ? elsewhere : hint);
}

// ---- loading ------------------------------------------------------------------------------------

// Where a key's final value came from. A higher rank overrides: a base file, then the file naming
// it, then the command line.
struct Setting {
  YAML::Node value;
  std::string origin;  // the file path as reached, or "command line"
  int rank = 0;
  fs::path dir;        // absolute directory that relative paths in `value` start from
};
using Settings = std::map<std::string, Setting>;  // by "section.key"

// `origin` names the text in messages (a file path, or e.g. "checkpoint X (its config)").
YAML::Node parse_yaml(const std::string& text, const std::string& origin) {
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    fail(origin, ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg);
  }
}

YAML::Node parse_file(const std::string& file) {
  if (!fs::is_regular_file(file)) fail(file, ": config file not found");
  std::ifstream in(file);
  if (!in) fail(file, ": cannot open config file");
  return parse_yaml(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()), file);
}

std::string base_path(const std::string& file, const YAML::Node& base, const std::vector<fs::path>& chain) {
  std::string name;
  try {
    read(base, name);
  } catch (const Error& e) {
    fail(file, ": base: ", e.what());
  }
  const std::string path = (fs::path(file).parent_path() / name).lexically_normal().string();
  if (name.empty() || !fs::is_regular_file(path)) fail(file, ": base: file \"", path, "\" not found");
  if (std::find(chain.begin(), chain.end(), fs::weakly_canonical(path)) != chain.end())
    fail(file, ": base: ", name, " makes a cycle of bases");
  return path;
}

// Reads the chain of bases under `file` first, so that each file overrides the ones below it.
// `chain` holds the files on the way here, to catch a cycle.
// The settings of one config document; `file` names it in messages and `dir` is where its
// relative paths (base:, data paths) start.
void read_root(const YAML::Node& root, const std::string& file, const fs::path& dir, Settings& settings,
               int& rank, std::vector<fs::path>& chain);

void read_file(const std::string& file, Settings& settings, int& rank, std::vector<fs::path>& chain) {
  read_root(parse_file(file), file, fs::absolute(file).parent_path(), settings, rank, chain);
}

void read_root(const YAML::Node& root, const std::string& file, const fs::path& dir, Settings& settings,
               int& rank, std::vector<fs::path>& chain) {
  if (!root.IsNull() && !root.IsMap())
    fail(file, ": expected sections (model:, train:, ...), got ", yaml::show(root));
  if (const YAML::Node base = root["base"]) {
    chain.push_back(fs::weakly_canonical(file));
    read_file(base_path(file, base, chain), settings, rank, chain);
    chain.pop_back();
  }
  ++rank;
  std::set<std::string> seen;  // yaml-cpp keeps a repeated key silently
  for (const auto& section : root) {
    const std::string section_name = section.first.Scalar();
    if (section_name == "base") continue;
    require_section(file, section_name, section_name);
    if (!section.second.IsNull() && !section.second.IsMap())
      fail(file, ": ", section_name, ": expected keys, got ", yaml::show(section.second));
    for (const auto& key : section.second) {
      const std::string name = section_name + "." + key.first.Scalar();
      require_key(file, name);
      if (!seen.insert(name).second) fail(file, ": ", name, ": set twice in this file");
      settings[name] = Setting{key.second, file, rank, dir};
    }
  }
}

void read_override(const std::string& text, Settings& settings, int rank) {
  const size_t eq = text.find('=');
  const std::string name = text.substr(0, eq);
  if (eq == std::string::npos || name.find('.') == std::string::npos)
    fail("command line: \"", text, "\": expected section.key=value");
  require_section("command line", name.substr(0, name.find('.')), name);
  require_key("command line", name);
  const std::string value = text.substr(eq + 1);
  try {
    settings[name] = Setting{YAML::Load(value), "command line", rank, fs::current_path()};
  } catch (const YAML::ParserException& e) {
    fail("command line: ", name, ": cannot read \"", value, "\" as YAML: ", e.msg);
  }
}

// A relative path names a file next to the config that sets it; stored absolute (and normalised)
// so that Config::resolved, saved anywhere, names the same file.
YAML::Node resolve_path(const Setting& s) {
  if (!s.value.IsScalar() || s.value.Scalar().empty()) return s.value;  // the reader judges the type
  return YAML::Node((s.dir / s.value.Scalar()).lexically_normal().string());
}

Config read_settings(const Settings& settings) {
  Config c;
  for (const Field& f : fields()) {
    const auto it = settings.find(f.name());
    if (it == settings.end()) continue;
    const Setting& s = it->second;
    try {
      f.read(c, kRelativePaths.count(f.name()) ? resolve_path(s) : s.value);
    } catch (const Error& e) {
      fail(s.origin, ": ", f.name(), ": ", e.what());
    }
  }
  // `auto` (also the default) is ceil(H / 16), as in the official code (HYMBA_SPEC §4).
  const auto dt_rank = settings.find("model.mamba_dt_rank");
  if (dt_rank == settings.end() || yaml::is_word(dt_rank->second.value, "auto"))
    c.model.mamba_dt_rank = (c.model.hidden_size + 15) / 16;
  return c;
}

// The file to edit: the latest source among the keys the failed check read; the top file when
// none of them is set anywhere.
std::string blame(const Problem& p, const Settings& settings, const std::string& top) {
  const Setting* latest = nullptr;
  std::vector<std::string> keys = p.also;
  keys.push_back(p.key);
  for (const std::string& k : keys)
    if (const auto it = settings.find(k); it != settings.end() && (!latest || it->second.rank > latest->rank))
      latest = &it->second;
  return latest ? latest->origin : top;
}

std::string emit(const Config& c) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  std::string section;
  for (const Field& f : fields()) {
    if (f.section != section) {
      if (!section.empty()) out << YAML::EndMap;
      section = f.section;
      out << YAML::Key << section << YAML::Value << YAML::BeginMap;
    }
    out << YAML::Key << f.key << YAML::Value;
    f.write(out, c);
  }
  out << YAML::EndMap << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace

namespace {

// The steps after reading the documents: overrides, typed reading, checks, the resolved text.
Config finish(Settings& settings, int rank, const std::vector<std::string>& overrides,
              const std::string& path) {
  ++rank;
  for (const std::string& o : overrides) read_override(o, settings, rank);
  Config c = read_settings(settings);
  c.path = path;
  if (const std::optional<Problem> p = first_problem(c)) {
    const char* unset = settings.count(p->key) ? "" : " (the default: not set in any file)";
    fail(blame(*p, settings, path), ": ", p->key, ": ", p->what, unset);
  }
  c.resolved = emit(c);
  return c;
}

}  // namespace

Config load_config(const std::string& path, const std::vector<std::string>& overrides) {
  Settings settings;
  int rank = 0;
  std::vector<fs::path> chain;
  read_file(path, settings, rank, chain);
  return finish(settings, rank, overrides, path);
}

Config load_config_text(const std::string& text, const std::string& origin,
                        const std::vector<std::string>& overrides) {
  Settings settings;
  int rank = 0;
  std::vector<fs::path> chain;
  read_root(parse_yaml(text, origin), origin, fs::current_path(), settings, rank, chain);
  return finish(settings, rank, overrides, origin);
}

void validate(const Config& c, const std::string& where) {
  if (const std::optional<Problem> p = first_problem(c)) fail(where, ": ", p->key, ": ", p->what);
}

}  // namespace hymba
