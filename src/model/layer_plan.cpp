#include "model/layer_plan.h"

#include <algorithm>

namespace hymba {

std::vector<LayerSpec> plan_layers(const ModelConfig& c) {
  const int64_t H = c.hidden_size, E = c.inner_size();
  const int64_t kv_cols = c.num_key_value_heads * (c.head_dim() + c.v_head_dim());
  const bool attention = c.mixer != "mamba", mamba = c.mixer != "attention";
  std::vector<LayerSpec> layers(static_cast<size_t>(c.num_hidden_layers));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    LayerSpec& s = layers[l];
    s.has_attention = attention;
    s.has_mamba = mamba;
    s.global = attention && std::find(c.global_attn_idx.begin(), c.global_attn_idx.end(), l) !=
                                c.global_attn_idx.end();
    s.kv_source = l;
  }
  for (const auto& group : c.kv_reuse_group) {  // empty without attention (validation)
    layers[group.front()].kv_role = KvRole::producer;
    layers[group.front()].kv_group_last = false;
    for (size_t j = 1; j < group.size(); ++j) {
      LayerSpec& s = layers[group[j]];
      s.kv_role = KvRole::consumer;
      s.kv_source = group.front();
      s.kv_group_last = j + 1 == group.size();
    }
  }
  for (LayerSpec& s : layers) {
    const int64_t attention_rows = H + (s.kv_role == KvRole::consumer ? 0 : kv_cols);  // q (| k | v)
    s.in_proj_rows = (s.has_attention ? attention_rows : 0) + (s.has_mamba ? 2 * E : 0);
  }
  return layers;
}

}  // namespace hymba
