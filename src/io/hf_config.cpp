#include "io/hf_config.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "core/error.h"
#include "core/json.h"

namespace hymba {
namespace {

// ---- writing as Python's json.dumps(indent=2, sort_keys=True) ------------------------------------

struct Node;
using Members = std::vector<std::pair<std::string, Node>>;
struct Node {
  std::variant<bool, int64_t, double, std::string, std::vector<Node>, Members> v;
};

Node list(const std::vector<int64_t>& xs) {
  std::vector<Node> out;
  for (int64_t x : xs) out.push_back({x});
  return {std::move(out)};
}

// Python's repr of a float: the shortest digits that read back exactly, in fixed notation when
// the decimal exponent is in [-4, 16), else as d.ddde±XX; integral values keep ".0".
std::string python_float(double x) {
  if (!std::isfinite(x)) fail("config.json cannot hold the number ", x);
  if (x == 0) return std::signbit(x) ? "-0.0" : "0.0";
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  HYMBA_ASSERT(ec == std::errc());
  const std::string s(buf, end);  // [-]d[.ddd]e±XX
  const size_t e = s.find('e');
  const bool negative = s[0] == '-';
  std::string digits;
  for (size_t i = negative; i < e; ++i)
    if (s[i] != '.') digits += s[i];
  const int exponent = std::atoi(s.c_str() + e + 1);
  std::string out = negative ? "-" : "";
  if (exponent < -4 || exponent >= 16) {
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    const std::string mag = std::to_string(std::abs(exponent));
    return out + (exponent < 0 ? "e-" : "e+") + (mag.size() < 2 ? "0" : "") + mag;
  }
  if (exponent < 0) return out + "0." + std::string(size_t(-exponent - 1), '0') + digits;
  const size_t point = size_t(exponent) + 1;
  if (digits.size() <= point) return out + digits + std::string(point - digits.size(), '0') + ".0";
  return out + digits.substr(0, point) + "." + digits.substr(point);
}

void write(std::string& out, const Node& n, int depth) {
  const std::string pad(size_t(2 * (depth + 1)), ' '), close(size_t(2 * depth), ' ');
  if (const auto* b = std::get_if<bool>(&n.v)) {
    out += *b ? "true" : "false";
  } else if (const auto* i = std::get_if<int64_t>(&n.v)) {
    out += std::to_string(*i);
  } else if (const auto* d = std::get_if<double>(&n.v)) {
    out += python_float(*d);
  } else if (const auto* s = std::get_if<std::string>(&n.v)) {
    append_json_string(out, *s, JsonEscape::ascii);
  } else if (const auto* items = std::get_if<std::vector<Node>>(&n.v)) {
    if (items->empty()) {
      out += "[]";
      return;
    }
    out += "[";
    for (size_t k = 0; k < items->size(); ++k) {
      out += (k ? ",\n" : "\n") + pad;
      write(out, (*items)[k], depth + 1);
    }
    out += "\n" + close + "]";
  } else {
    Members members = std::get<Members>(n.v);
    if (members.empty()) {
      out += "{}";
      return;
    }
    // Byte order is code point order for these ASCII keys, as Python sorts them.
    std::sort(members.begin(), members.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    out += "{";
    for (size_t k = 0; k < members.size(); ++k) {
      out += (k ? ",\n" : "\n") + pad;
      append_json_string(out, members[k].first, JsonEscape::ascii);
      out += ": ";
      write(out, members[k].second, depth + 1);
    }
    out += "\n" + close + "}";
  }
}

// ---- reading ------------------------------------------------------------------------------------

class HfReader {
 public:
  HfReader(const JsonValue& root, const std::string& source) : root_(root), source_(source) {
    if (root.type() != JsonValue::Type::object) fail(source, ": expected a JSON object");
  }

  [[noreturn]] void bad(const std::string& key, const std::string& what) const {
    fail(source_, ": ", key, ": ", what);
  }
  const JsonValue* optional(const std::string& key) const { return root_.find(key); }
  const JsonValue& required(const std::string& key) const {
    const JsonValue* v = root_.find(key);
    if (!v) {
      bad(key, "missing (this key decides the model, and HymbaConfig's default differs from the release)");
    }
    return *v;
  }

  int64_t integer(const std::string& key) const {
    const JsonValue& v = required(key);
    if (!v.is_integer()) bad(key, "expected an integer (" + v.where() + ")");
    return v.as_int();
  }
  double number(const std::string& key) const {
    const JsonValue& v = required(key);
    if (v.type() != JsonValue::Type::number) bad(key, "expected a number (" + v.where() + ")");
    return v.as_number();
  }
  std::string string(const std::string& key) const {
    const JsonValue& v = required(key);
    if (v.type() != JsonValue::Type::string) bad(key, "expected a string (" + v.where() + ")");
    return v.as_string();
  }
  bool boolean(const std::string& key) const {
    const JsonValue& v = required(key);
    if (v.type() != JsonValue::Type::boolean) bad(key, "expected true or false (" + v.where() + ")");
    return v.as_bool();
  }
  std::vector<int64_t> integers(const std::string& key, const JsonValue& v) const {
    if (v.type() != JsonValue::Type::array) bad(key, "expected a list of integers (" + v.where() + ")");
    std::vector<int64_t> out;
    for (const JsonValue& x : v.as_array()) {
      if (!x.is_integer()) bad(key, "expected a list of integers (" + x.where() + ")");
      out.push_back(x.as_int());
    }
    return out;
  }

  // The setting must be the one this framework implements, e.g. require("rope", true).
  template <class T>
  void require(const std::string& key, const T& want) const {
    T got;
    if constexpr (std::is_same_v<T, bool>) got = boolean(key);
    else if constexpr (std::is_same_v<T, int64_t>) got = integer(key);
    else got = string(key);
    if (got != want) {
      bad(key, detail::concat(show(got), " is not supported: this framework implements only ", show(want)));
    }
  }
  // As require, for keys whose absence means the supported value.
  template <class T>
  void require_if_present(const std::string& key, const T& want) const {
    if (optional(key)) require(key, want);
  }

 private:
  static std::string show(bool b) { return b ? "true" : "false"; }
  static std::string show(int64_t i) { return std::to_string(i); }
  static std::string show(const std::string& s) { return json_string(s); }

  const JsonValue& root_;
  const std::string& source_;
};

}  // namespace

std::string hf_config_json(const ModelConfig& c, StDtype dtype) {
  if (c.mixer != "hybrid") {
    fail("model.mixer: ", c.mixer,
         " has no official counterpart; only hybrid models export to the HF format");
  }
  const int64_t L = c.num_hidden_layers, E = c.inner_size();
  Members conv_dim;
  for (int64_t l = 0; l < L; ++l) conv_dim.emplace_back(std::to_string(l), Node{E});
  std::vector<Node> groups, layer_type(size_t(L), Node{std::string("h")});
  for (const std::vector<int64_t>& g : c.kv_reuse_group) groups.push_back(list(g));
  using S = std::string;
  const Members root = {
      {"architectures", {std::vector<Node>{{S("HymbaForCausalLM")}}}},
      {"attention_dropout", {0.0}},
      {"attn_hidden_size", {int64_t(-1)}},
      {"attn_implementation", {S("flex")}},
      {"attn_implementation_new", {S("flex")}},
      {"auto_map", {Members{{"AutoConfig", {S("configuration_hymba.HymbaConfig")}},
                            {"AutoModelForCausalLM", {S("modeling_hymba.HymbaForCausalLM")}}}}},
      {"bos_token_id", {c.bos_token_id}},
      {"calc_logits_for_entire_prompt", {false}},
      {"conv_dim", {conv_dim}},
      {"eos_token_id", {c.eos_token_id}},
      {"global_attn_idx", list(c.global_attn_idx)},
      {"hidden_act", {S("silu")}},
      {"hidden_size", {c.hidden_size}},
      {"initializer_range", {c.initializer_range}},
      {"intermediate_size", {c.intermediate_size}},
      {"kq_head_dim", {int64_t(-1)}},
      {"kq_norm", {S("none")}},
      {"kv_reuse_every_i_layer", {int64_t(-1)}},
      {"kv_reuse_group", {groups}},
      {"kv_weight_reuse", {false}},
      {"layer_type", {layer_type}},
      {"mamba_conv_bias", {true}},
      {"mamba_d_conv", {c.mamba_d_conv}},
      {"mamba_d_state", {c.mamba_d_state}},
      {"mamba_dt_rank", {c.mamba_dt_rank}},
      {"mamba_expand", {c.mamba_expand}},
      {"mamba_inner_layernorms", {true}},
      {"mamba_proj_bias", {false}},
      {"max_position_embeddings", {c.max_position_embeddings}},
      {"memory_tokens_interspersed_every", {int64_t(0)}},
      {"mlp_hidden_act", {S("silu")}},
      {"model_type", {S("hymba")}},
      {"num_attention_heads", {c.num_attention_heads}},
      {"num_experts", {int64_t(1)}},
      {"num_experts_per_tok", {int64_t(1)}},
      {"num_hidden_layers", {L}},
      {"num_key_value_heads", {c.num_key_value_heads}},
      {"num_mamba", {int64_t(1)}},
      {"num_memory_tokens", {c.num_memory_tokens}},
      {"orig_max_position_embeddings", {c.orig_max_position_embeddings}},
      {"output_router_logits", {false}},
      {"pad_token_id", {c.pad_token_id}},
      {"rms_norm_eps", {c.rms_norm_eps}},
      {"rope", {true}},
      {"rope_theta", {c.rope_theta}},
      {"rope_type", {c.rope_type}},
      {"router_aux_loss_coef", {0.001}},
      // The official code sizes its precompiled flex-attention mask by seq_length (HYMBA_SPEC §5.9);
      // the release sets it to max_position_embeddings.
      {"seq_length", {c.max_position_embeddings}},
      {"sliding_window", {c.sliding_window}},
      {"tie_word_embeddings", {true}},
      {"torch_dtype", {S(dtype == StDtype::bf16 ? "bfloat16" : "float32")}},
      {"transformers_version", {S("4.44.0")}},
      {"use_cache", {false}},
      {"use_mamba_kernels", {true}},
      {"v_head_dim", {c.v_head_dim()}},
      {"vocab_size", {c.vocab_size}},
  };
  std::string out;
  write(out, Node{root}, 0);
  return out + "\n";
}

ModelConfig model_config_from_hf(std::string_view json_text, const std::string& source) {
  const JsonValue root = parse_json(json_text, {source});
  const HfReader r(root, source);
  using S = std::string;
  r.require("model_type", S("hymba"));
  // Flags whose other values change the model beyond what this framework implements.
  r.require("tie_word_embeddings", true);
  r.require("kq_norm", S("none"));
  r.require("memory_tokens_interspersed_every", int64_t(0));
  r.require("num_experts", int64_t(1));
  r.require_if_present("num_experts_per_tok", int64_t(1));
  r.require("mlp_hidden_act", S("silu"));
  r.require("hidden_act", S("silu"));
  r.require("rope", true);
  r.require("mamba_inner_layernorms", true);
  r.require("mamba_proj_bias", false);
  r.require("mamba_conv_bias", true);
  r.require_if_present("attn_hidden_size", int64_t(-1));
  r.require_if_present("kq_head_dim", int64_t(-1));
  r.require_if_present("kv_reuse_every_i_layer", int64_t(-1));
  // Only flex attention has the released masks (meta tokens visible through the window, §5.12).
  r.require_if_present("attn_implementation_new", S("flex"));

  ModelConfig c;
  c.hidden_size = r.integer("hidden_size");
  c.num_hidden_layers = r.integer("num_hidden_layers");
  c.num_attention_heads = r.integer("num_attention_heads");
  c.num_key_value_heads = r.integer("num_key_value_heads");
  c.intermediate_size = r.integer("intermediate_size");
  c.vocab_size = r.integer("vocab_size");
  c.mamba_expand = r.integer("mamba_expand");
  c.mamba_d_state = r.integer("mamba_d_state");
  c.mamba_d_conv = r.integer("mamba_d_conv");
  // HymbaConfig turns "auto" into ceil(H / 16), as load_config does.
  const JsonValue& dt_rank = r.required("mamba_dt_rank");
  c.mamba_dt_rank = dt_rank.type() == JsonValue::Type::string && dt_rank.as_string() == "auto"
                        ? (c.hidden_size + 15) / 16
                        : r.integer("mamba_dt_rank");
  c.num_memory_tokens = r.integer("num_memory_tokens");
  c.sliding_window = r.integer("sliding_window");
  c.global_attn_idx = r.integers("global_attn_idx", r.required("global_attn_idx"));
  const JsonValue& groups = r.required("kv_reuse_group");
  if (groups.type() != JsonValue::Type::null) {  // null: no KV sharing
    if (groups.type() != JsonValue::Type::array) {
      r.bad("kv_reuse_group", "expected a list of lists of layers");
    }
    for (const JsonValue& g : groups.as_array()) c.kv_reuse_group.push_back(r.integers("kv_reuse_group", g));
  }
  c.rms_norm_eps = r.number("rms_norm_eps");
  c.rope_theta = r.number("rope_theta");
  c.rope_type = r.string("rope_type");
  c.max_position_embeddings = r.integer("max_position_embeddings");
  c.orig_max_position_embeddings = r.integer("orig_max_position_embeddings");
  c.pad_token_id = r.integer("pad_token_id");
  c.bos_token_id = r.integer("bos_token_id");
  c.eos_token_id = r.integer("eos_token_id");
  c.initializer_range = r.number("initializer_range");

  // The official code overwrites v_head_dim with E / nh (HYMBA_SPEC §2.4); a file that says
  // otherwise was not written for the model it describes. (Heads that do not divide E are
  // load_config's to report.)
  if (r.optional("v_head_dim") && c.num_attention_heads > 0 && c.inner_size() % c.num_attention_heads == 0) {
    const int64_t v_head_dim = r.integer("v_head_dim");
    if (v_head_dim != c.v_head_dim()) {
      r.bad("v_head_dim", detail::concat(v_head_dim, " does not match mamba_expand · hidden_size / ",
                                         "num_attention_heads = ", c.v_head_dim()));
    }
  }
  return c;
}

std::vector<std::string> hf_model_overrides(const ModelConfig& c) {
  // Values in the YAML the config reader reads back exactly: shortest round-trip numbers, flow lists.
  const auto real = [](double x) {
    char buf[32];
    const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
    HYMBA_ASSERT(ec == std::errc());
    return std::string(buf, end);
  };
  const auto ints = [](const std::vector<int64_t>& xs) {
    std::string out;
    for (int64_t x : xs) out += (out.empty() ? "" : ", ") + std::to_string(x);
    return "[" + out + "]";
  };
  std::string groups;
  for (const std::vector<int64_t>& g : c.kv_reuse_group) groups += (groups.empty() ? "" : ", ") + ints(g);
  const auto i = [](int64_t x) { return std::to_string(x); };
  const std::vector<std::pair<const char*, std::string>> keys = {
      {"hidden_size", i(c.hidden_size)},
      {"num_hidden_layers", i(c.num_hidden_layers)},
      {"num_attention_heads", i(c.num_attention_heads)},
      {"num_key_value_heads", i(c.num_key_value_heads)},
      {"intermediate_size", i(c.intermediate_size)},
      {"vocab_size", i(c.vocab_size)},
      {"mamba_expand", i(c.mamba_expand)},
      {"mamba_d_state", i(c.mamba_d_state)},
      {"mamba_d_conv", i(c.mamba_d_conv)},
      {"mamba_dt_rank", i(c.mamba_dt_rank)},
      {"num_memory_tokens", i(c.num_memory_tokens)},
      {"sliding_window", i(c.sliding_window)},
      {"global_attn_idx", ints(c.global_attn_idx)},
      {"kv_reuse_group", "[" + groups + "]"},
      {"rms_norm_eps", real(c.rms_norm_eps)},
      {"rope_theta", real(c.rope_theta)},
      {"rope_type", json_string(c.rope_type)},  // quoted: a YAML string whatever it spells
      {"max_position_embeddings", i(c.max_position_embeddings)},
      {"orig_max_position_embeddings", i(c.orig_max_position_embeddings)},
      {"pad_token_id", i(c.pad_token_id)},
      {"bos_token_id", i(c.bos_token_id)},
      {"eos_token_id", i(c.eos_token_id)},
      {"initializer_range", real(c.initializer_range)},
      {"mixer", "hybrid"},
  };
  std::vector<std::string> out;
  for (const auto& [key, value] : keys) out.push_back(std::string("model.") + key + "=" + value);
  return out;
}

}  // namespace hymba
