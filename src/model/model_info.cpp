#include "model/model_info.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "model/layer_plan.h"
#include "model/param_layout.h"

namespace hymba {

int64_t attention_pairs(bool global, int64_t S, int64_t window, int64_t meta) {
  int64_t pairs = 0;
  for (int64_t q = 0; q < S; ++q) {
    if (global) {
      pairs += q + 1;
    } else {
      // the window [q − W, q], plus meta keys left of it
      pairs += std::min(q, window) + 1 + std::min(meta, std::max<int64_t>(0, q - window));
    }
  }
  return pairs;
}

ModelInfo describe_model(const ModelConfig& c, int64_t seq_len) {
  const std::vector<LayerSpec> plan = plan_layers(c);
  const ParamLayout layout = build_param_layout(c, plan);
  ModelInfo info;
  info.seq_len = seq_len;
  info.parameters = layout.count;
  std::map<ParamKind, int64_t> by_kind;
  for (const ParamTensor& t : layout.tensors) by_kind[t.kind] += t.full_numel();
  for (const auto& [kind, n] : by_kind) info.params_by_kind.emplace_back(param_kind_name(kind), n);

  const int64_t H = c.hidden_size, E = c.inner_size(), I = c.intermediate_size;
  const int64_t R = c.mamba_dt_rank, N = c.mamba_d_state, V = c.vocab_size;
  const int64_t S = c.num_memory_tokens + seq_len;
  const double per_text_token = double(S) / double(seq_len);
  for (const LayerSpec& s : plan) {
    info.global_layers += s.global;
    info.kv_consumers += s.kv_role == KvRole::consumer;
    // in_proj, out_proj and the MLP; x_proj and dt_proj with Mamba heads
    const double mamba_macs = s.has_mamba ? double(R + 2 * N) * E + double(R) * E : 0.0;
    const double macs = double(s.in_proj_rows) * H + mamba_macs + double(E) * H + 3.0 * H * I;
    info.matmul_flops += 2 * macs * per_text_token;
    if (s.has_attention) {
      info.attention_flops += 2.0 * c.num_attention_heads * (c.head_dim() + c.v_head_dim()) *
                              double(attention_pairs(s.global, S, c.sliding_window,
                                                     c.num_memory_tokens)) /
                              double(seq_len);
    }
  }
  info.matmul_flops += 2.0 * V * H;  // tied lm_head, text positions only
  return info;
}

namespace {

std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// 3 significant digits with an SI prefix: si(10.5e9) = "10.5 G".
std::string si(double v) {
  constexpr const char* kPrefixes[] = {" ", " k", " M", " G", " T"};
  int p = 0;
  while (v >= 1000 && p < 4) v /= 1000, ++p;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g%s", v, kPrefixes[p]);
  return buf;
}

}  // namespace

std::string format_model_info(const ModelInfo& info) {
  std::ostringstream o;
  o << "parameters by kind:\n";
  for (const auto& [kind, n] : info.params_by_kind) {
    o << "  " << kind << std::string(12 - kind.size(), ' ') << with_commas(n) << "\n";
  }
  o << "parameters: " << info.parameters << "  (" << fixed(info.parameters / 1e6, 2) << " M)\n";
  o << "layers: " << info.global_layers << " global attention, " << info.kv_consumers
    << " reuse another layer's KV\n";
  o << "model FLOPs per token: " << si(info.train_flops())
    << "FLOP forward+backward (3 x forward: matmul " << si(info.matmul_flops) << "FLOP + attention "
    << si(info.attention_flops) << "FLOP, seq_len " << info.seq_len << ")\n";
  return o.str();
}

}  // namespace hymba
