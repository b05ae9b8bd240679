// The whole CPU model: the loss gradient of every parameter tensor against finite differences in
// double, float against double on the tiny config, and the parameter count of the 1.5B config;
// the same for the model.mixer ablations (attention heads only, Mamba heads only).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "config/config.h"
#include "core/rng.h"
#include "eval_test_model.h"
#include "gradcheck.h"
#include "model/hymba_model.h"
#include "model/model_info.h"

namespace hymba::test {
namespace {

// The activation plan of `batch` rows of T tokens (fp32, one tensor-parallel rank, no scan
// states: the CPU model's): floats kept for backward, and the rest (scratch and logits).
struct PlanFloats {
  double saved, scratch;
};
PlanFloats plan_floats(const ModelConfig& c, int64_t batch, int64_t T, Recompute r) {
  Activations<float> a;
  place_activations(a, make_dims(c, batch, T), plan_layers(c), /*tp=*/1, /*scan_states=*/0, r, nullptr);
  return {double(a.saved) / sizeof(float), double(a.total - a.saved) / sizeof(float)};
}

// Token ids in [1, V): id 0 is the padding row, whose lookup gradient is zero by definition
// (nn.Embedding padding_idx) and so differs from the finite difference on purpose.
std::vector<int32_t> random_ids(int64_t n, int64_t V, uint64_t seed, int32_t lowest = 1) {
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) {
    ids[i] = lowest + static_cast<int32_t>(uniform01(seed, 77, i) * double(V - lowest));
  }
  return ids;
}

// Moves every parameter off its special initial value (ones, zeros, log(1..N)) so the check
// runs at a generic point.
// Adds noise of scale 0.1 to every element of every tensor, drawn per tensor name and element (so
// the point does not depend on where the layout places the tensors).
void perturb(HymbaModel<double>& model, uint64_t seed) {
  for (const ParamTensor& t : model.layout().tensors) {
    for (int64_t i = 0; i < t.numel; ++i) {
      model.params[size_t(t.offset + i)] += 0.1 * (2 * uniform01(seed, hash_name(t.name), uint64_t(i)) - 1);
    }
  }
}

void check_model_gradients(const ModelConfig& c, int64_t B, int64_t T) {
  HymbaModel<double> model(c, B, T);
  model.init(7);
  perturb(model, 8);
  const auto ids = random_ids(B * T, c.vocab_size, 9);
  const auto targets = random_ids(B * T, c.vocab_size, 10, 0);
  const double scale = 1.0 / double(B * T);

  model.zero_grads();
  model.forward_backward(ids.data(), targets.data(), scale);
  const std::vector<double> grads = model.grads;

  GradCheckOptions opt;
  opt.max_elements = 24;
  for (const ParamTensor& t : model.layout().tensors) {
    if (t.numel == 0) continue;  // memory tokens when M = 0
    std::vector<double> values(model.params.begin() + t.offset, model.params.begin() + t.offset + t.numel);
    const std::vector<double> grad(grads.begin() + t.offset, grads.begin() + t.offset + t.numel);
    auto loss = [&] {
      std::copy(values.begin(), values.end(), model.params.begin() + t.offset);
      return scale * model.forward(ids.data(), targets.data());
    };
    check_gradients({{t.name, &values, &grad}}, loss, opt);
    // The check restores `values`, not the model: put the unperturbed tensor back.
    std::copy(values.begin(), values.end(), model.params.begin() + t.offset);
  }
}

TEST(ModelGradients, EveryTensorMatchesFiniteDifferencesSequenceLongerThanWindow) {
  check_model_gradients(small_config(/*window=*/4, /*meta=*/3), /*B=*/2, /*T=*/9);
}

TEST(ModelGradients, EveryTensorMatchesFiniteDifferencesSequenceShorterThanWindow) {
  check_model_gradients(small_config(/*window=*/8, /*meta=*/0), /*B=*/1, /*T=*/5);
}

TEST(ModelGradients, ProducerFirstGroupsOfThreeAndNoGlobalLayers) {
  ModelConfig c = small_config(/*window=*/2, /*meta=*/2);
  c.num_hidden_layers = 5;
  c.global_attn_idx = {};
  c.kv_reuse_group = {{0, 1, 2}, {3, 4}};
  check_model_gradients(c, /*B=*/2, /*T=*/6);
}

// The model.mixer ablations: one branch per layer, no averaging (its norm output goes to out_proj).
ModelConfig attention_only(ModelConfig c) {
  c.mixer = "attention";
  return c;
}

ModelConfig mamba_only(ModelConfig c) {
  c.mixer = "mamba";
  c.kv_reuse_group = {};  // validation requires it; global_attn_idx is left set: it is ignored
  return c;
}

TEST(ModelGradients, AttentionOnlyEveryTensorMatchesFiniteDifferences) {
  check_model_gradients(attention_only(small_config(/*window=*/4, /*meta=*/3)), /*B=*/2, /*T=*/9);
}

TEST(ModelGradients, MambaOnlyEveryTensorMatchesFiniteDifferences) {
  ModelConfig c = mamba_only(small_config(/*window=*/4, /*meta=*/3));
  // Each block output is RMSNorm(scan) alone, with no attention half to dilute it, and at 0.3 a
  // few scan rows are small (rms ~0.04), where the norm's 1/rms makes the loss so curved that a
  // second-order difference at h = 1e-5 missed by up to 3e-4. Larger weights give larger scan
  // outputs.
  c.initializer_range = 0.5;
  check_model_gradients(c, /*B=*/2, /*T=*/9);
}

TEST(ModelGradients, GradientsAccumulateOverCalls) {
  const ModelConfig c = small_config(4, 3);
  HymbaModel<double> model(c, 2, 5);
  model.init(1);
  const auto ids = random_ids(10, c.vocab_size, 2), targets = random_ids(10, c.vocab_size, 3, 0);
  model.zero_grads();
  model.forward_backward(ids.data(), targets.data(), 0.1);
  const auto once = model.grads;
  model.forward_backward(ids.data(), targets.data(), 0.1);
  for (size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(model.grads[i], 2 * once[i], 1e-12 * (1 + std::abs(once[i])));
}

// train.recompute: at every level the loss and the gradients are those of keeping everything,
// to the bit (the same kernels on the same inputs), with a KV-sharing group and a global layer,
// and with either branch alone. Two calls, as with gradient accumulation.
TEST(Recompute, EveryLevelGivesTheSameLossAndGradientBits) {
  const ModelConfig hybrid = small_config(/*window=*/4, /*meta=*/3);
  for (const ModelConfig& c : {hybrid, attention_only(hybrid), mamba_only(hybrid)}) {
    SCOPED_TRACE(c.mixer);
    const int64_t B = 2, T = 9;
    const auto ids = random_ids(B * T, c.vocab_size, 4), targets = random_ids(B * T, c.vocab_size, 5, 0);
    std::vector<float> kept_grads;
    double kept_loss = 0, kept_eval = 0;
    for (const Recompute r : {Recompute::none, Recompute::norms, Recompute::mlp, Recompute::all}) {
      SCOPED_TRACE(recompute_name(r));
      HymbaModel<float> model(c, B, T, 1, {}, r);
      model.init(3);
      model.zero_grads();
      double loss = model.forward_backward(ids.data(), targets.data(), 0.05);
      loss += model.forward_backward(ids.data(), targets.data(), 0.05);
      const double eval = model.forward(ids.data(), targets.data());
      if (r == Recompute::none) {
        kept_grads = model.grads, kept_loss = loss, kept_eval = eval;
        continue;
      }
      EXPECT_EQ(loss, kept_loss);
      EXPECT_EQ(eval, kept_eval);
      ASSERT_EQ(model.grads.size(), kept_grads.size());
      for (size_t i = 0; i < kept_grads.size(); ++i) ASSERT_EQ(model.grads[i], kept_grads[i]) << "element " << i;
    }
  }
}

// Each level keeps less: norms drops the two norm outputs and the fusion output (2H + E per
// position and layer), mlp also the MLP's gate, up and product (3I), all every layer buffer but
// a KV producer's in_proj output and keys (which its consumers read). What a level recomputes
// becomes one layer's worth of scratch.
TEST(Recompute, EachLevelKeepsLessForBackward) {
  const ModelConfig c = small_config(/*window=*/4, /*meta=*/3);  // H 16, E 32, I 24, 4 layers
  const int64_t T = 8, S = c.num_memory_tokens + T, L = c.num_hidden_layers;
  const int64_t H = c.hidden_size, E = c.inner_size(), I = c.intermediate_size;
  const auto saved = [&](Recompute r) { return plan_floats(c, 1, T, r).saved; };
  const auto scratch = [&](Recompute r) { return plan_floats(c, 1, T, r).scratch; };
  EXPECT_DOUBLE_EQ(saved(Recompute::none) - saved(Recompute::norms), double(L * (2 * H + E) * S));
  EXPECT_DOUBLE_EQ(scratch(Recompute::norms) - scratch(Recompute::none), double((2 * H + E) * S));
  EXPECT_DOUBLE_EQ(saved(Recompute::norms) - saved(Recompute::mlp), double(L * 3 * I * S));
  // all: the residual streams (L + 1 of H), the final norm's statistics and output, and the
  // producer's (layer 1) in_proj output (q 16 | k 8 | v 16 | x 32 | z 32 = 104) and keys (8).
  EXPECT_DOUBLE_EQ(saved(Recompute::all), double((L + 1) * H * S + T + T * H + (104 + 8) * S));
}

// memory() counts what the constructor allocates, at every level and data-parallel size (which
// pads the layout's buckets): what the trainer checks against the GPU's free memory.
TEST(ModelMemory, CountsWhatTheConstructorAllocates) {
  const ModelConfig c = small_config(/*window=*/4, /*meta=*/3);
  for (const Recompute r : {Recompute::none, Recompute::norms, Recompute::mlp, Recompute::all}) {
    for (const int64_t replicas : {1, 3}) {
      SCOPED_TRACE(std::string(recompute_name(r)) + ", " + std::to_string(replicas) + " replicas");
      const HymbaModel<float> model(c, 2, 8, replicas, {}, r);
      const ModelMemory m = HymbaModel<float>::memory(c, 2, 8, replicas, {}, r);
      EXPECT_EQ(m.weights, int64_t((model.params.size() + model.grads.size()) * sizeof(float)));
      EXPECT_EQ(m.saved + m.scratch, model.arena_bytes());
      EXPECT_EQ(m.saved, int64_t(plan_floats(c, 2, 8, r).saved * sizeof(float)));
      EXPECT_EQ(m.kernels, 0);  // the CPU backend holds no buffers
    }
  }
}

TEST(ModelPrecision, FloatAndDoubleAgreeOnTinyConfig) {
  const Config cfg = load_config(std::string(HYMBA_SOURCE_DIR) + "/configs/tiny.yaml");
  const int64_t B = 2, T = 40;
  HymbaModel<double> md(cfg.model, B, T);
  HymbaModel<float> mf(cfg.model, B, T);
  md.init(3);
  mf.init(3);
  const auto ids = random_ids(B * T, cfg.model.vocab_size, 4);
  md.forward(ids.data(), nullptr);
  mf.forward(ids.data(), nullptr);
  double max_diff = 0, max_abs = 0;
  for (int64_t i = 0; i < B * T * md.logits_stride(); ++i) {  // padding columns: zero in both
    max_diff = std::max(max_diff, std::abs(md.logits()[i] - double(mf.logits()[i])));
    max_abs = std::max(max_abs, std::abs(md.logits()[i]));
  }
  EXPECT_GT(max_abs, 1e-3);
  EXPECT_LT(max_diff / max_abs, 1e-5) << "max |Δlogit| " << max_diff << " of max |logit| " << max_abs;
}

TEST(ModelInit, FollowsTheSpec) {
  ModelConfig c = small_config(4, 3);
  c.initializer_range = 0.02;
  HymbaModel<double> model(c, 1, 1);
  model.init(5);
  for (const ParamTensor& t : model.layout().tensors) {
    // The HF tensor's elements in order, and every element outside them (padding) zero.
    const double* held = model.params.data() + t.offset;
    std::vector<double> v;
    std::vector<bool> is_padding(size_t(t.numel), true);
    for (const SliceRun& r : slice_runs(t, model.layout().tp)) {
      v.insert(v.end(), held + r.local, held + r.local + r.length);
      std::fill_n(is_padding.begin() + r.local, r.length, false);
    }
    ASSERT_EQ(int64_t(v.size()), t.full_numel()) << t.name;
    for (int64_t i = 0; i < t.numel; ++i) {
      if (is_padding[size_t(i)]) {
        ASSERT_EQ(held[i], 0.0) << t.name << " padding element " << i;
      }
    }
    const int64_t n = t.full_numel();
    double sum = 0, sum_sq = 0;
    for (int64_t i = 0; i < n; ++i) sum += v[i], sum_sq += v[i] * v[i];
    const double mean = sum / double(n), rms = std::sqrt(sum_sq / double(n));
    SCOPED_TRACE(t.name);
    if (t.name.find("layernorm") != std::string::npos || t.name.ends_with("D.0")) {
      EXPECT_EQ(mean, 1.0);
      EXPECT_EQ(rms, 1.0);
    } else if (t.name.ends_with("conv1d.bias") || t.name.ends_with("dt_proj.0.bias")) {
      EXPECT_EQ(rms, 0.0);
    } else if (t.name.ends_with("A_log.0")) {
      for (int64_t i = 0; i < t.numel; ++i) EXPECT_DOUBLE_EQ(v[i], std::log(double(i % c.mamba_d_state + 1)));
    } else if (t.name == "model.memory_tokens") {
      EXPECT_NEAR(rms, 1.0, 0.35);  // N(0, 1) over 48 values
    } else {
      EXPECT_NEAR(rms, 0.02, 0.02 * 0.35);  // N(0, 0.02)
    }
  }
  // Embedding row pad_token_id = 0 starts at zero.
  const double* embed = model.params.data();
  for (int64_t h = 0; h < c.hidden_size; ++h) EXPECT_EQ(embed[h], 0.0);
}

TEST(ModelInit, MambaDtBiasGivesDtInRange) {
  ModelConfig c = small_config(4, 3);
  c.dt_init = DtInit::mamba;  // the framework's default
  HymbaModel<double> model(c, 1, 1);
  model.init(5);
  for (const ParamTensor& t : model.layout().tensors) {
    if (!t.name.ends_with("dt_proj.0.bias")) continue;
    for (int64_t i = 0; i < t.numel; ++i) {
      const double dt = std::log1p(std::exp(model.params[t.offset + i]));  // softplus(bias)
      EXPECT_GE(dt, c.dt_min * 0.999);
      EXPECT_LE(dt, c.dt_max * 1.001);
    }
  }
}

TEST(ParamLayout, OfficialConfigHasOfficialShapesAndCount) {
  const Config cfg = load_config(std::string(HYMBA_SOURCE_DIR) + "/configs/hymba-1.5b.yaml");
  const auto plan = plan_layers(cfg.model);
  const ParamLayout layout = build_param_layout(cfg.model, plan);
  EXPECT_EQ(layout.count, 1522797824);
  // Per-layer counts and in_proj rows from HYMBA_SPEC §2.5 / §3.
  const std::vector<int64_t> consumers = {2, 4, 6, 8, 10, 12, 14, 17, 18, 20, 22, 24, 26, 28, 30};
  for (int64_t l = 0; l < 32; ++l) {
    const bool consumer = std::find(consumers.begin(), consumers.end(), l) != consumers.end();
    EXPECT_EQ(plan[l].in_proj_rows, consumer ? 8000 : 8960) << l;
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    int64_t n = 0;
    for (const ParamTensor& t : layout.tensors) n += t.name.starts_with(prefix) ? t.full_numel() : 0;
    EXPECT_EQ(n, consumer ? 45164932 : 46700932) << l;
  }
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const ParamTensor& t : layout.tensors) shapes[t.name] = t.full_shape;
  EXPECT_EQ(shapes["model.embed_tokens.weight"], (std::vector<int64_t>{32001, 1600}));
  EXPECT_EQ(layout.tensors[0].shape, (std::vector<int64_t>{32064, 1600}));  // held with padding rows
  EXPECT_EQ(shapes["model.memory_tokens"], (std::vector<int64_t>{128, 1600}));
  EXPECT_EQ(shapes["model.layers.0.mamba.x_proj.0.weight"], (std::vector<int64_t>{132, 3200}));
  EXPECT_EQ(layout.tensors[7].shape, (std::vector<int64_t>{136, 3200}));  // dt 100 -> 104 rows
  EXPECT_EQ(layout.tensors[8].shape, (std::vector<int64_t>{3200, 104}));  // dt_proj's R columns
  EXPECT_EQ(shapes["model.layers.0.mamba.conv1d.weight"], (std::vector<int64_t>{3200, 1, 4}));
  EXPECT_EQ(shapes["model.layers.2.mamba.in_proj.weight"], (std::vector<int64_t>{8000, 1600}));
  EXPECT_EQ(shapes["model.layers.5.mamba.A_log.0"], (std::vector<int64_t>{3200, 16}));
  EXPECT_EQ(shapes.size(), 2 + 32 * 19 + 1u);
  EXPECT_EQ(describe_model(cfg.model, 2048).parameters, 1522797824);
}

// The tensor `name` of a model's parameters.
const double* param(const HymbaModel<double>& m, const std::string& name) {
  for (const ParamTensor& t : m.layout().tensors)
    if (t.name == name) return m.params.data() + t.offset;
  ADD_FAILURE() << "no tensor " << name;
  return nullptr;
}

// w ⊙ x / sqrt(mean(x²) + eps) of one row.
std::vector<double> rms_normalised(const double* x, const double* w, int64_t n, double eps) {
  double sum_sq = 0;
  for (int64_t i = 0; i < n; ++i) sum_sq += x[i] * x[i];
  const double rstd = 1 / std::sqrt(sum_sq / double(n) + eps);
  std::vector<double> y(n);
  for (int64_t i = 0; i < n; ++i) y[i] = w[i] * x[i] * rstd;
  return y;
}

// The block output of layer 1 rebuilt from the saved branch outputs with the fusion written out:
// out_proj of the mean of the normalised branches the mixer keeps (HYMBA_SPEC §2.7 for hybrid).
void check_fusion(const ModelConfig& c) {
  const int64_t B = 2, T = 5, H = c.hidden_size, E = c.inner_size();
  HymbaModel<double> model(c, B, T);
  model.init(3);
  perturb(model, 4);  // norm weights off their ones
  const auto ids = random_ids(B * T, c.vocab_size, 5);
  model.forward(ids.data(), nullptr);
  const LayerActivations<double>& a = model.activations().layers[1];
  const double* x = model.activations().resid[1];  // [BS, H]
  const std::string m = "model.layers.1.mamba.";
  const double* out_proj = param(model, m + "out_proj.weight");  // [H, E]
  const bool attention = c.mixer != "mamba", mamba = c.mixer != "attention";
  const double* attn_w = attention ? param(model, m + "pre_avg_layernorm1.weight") : nullptr;
  const double* ssm_w = mamba ? param(model, m + "pre_avg_layernorm2.weight") : nullptr;
  const double eps = c.rms_norm_eps;
  double max_err = 0;
  for (int64_t r = 0; r < B * (c.num_memory_tokens + T); ++r) {
    std::vector<double> f(E, 0.0);
    const double share = attention && mamba ? 0.5 : 1.0;
    if (attention) {
      const auto n = rms_normalised(a.attn + r * E, attn_w, E, eps);
      for (int64_t e = 0; e < E; ++e) f[e] += share * n[e];
    }
    if (mamba) {
      const auto n = rms_normalised(a.scan + r * E, ssm_w, E, eps);
      for (int64_t e = 0; e < E; ++e) f[e] += share * n[e];
    }
    for (int64_t h = 0; h < H; ++h) {
      double y = x[r * H + h];
      for (int64_t e = 0; e < E; ++e) y += out_proj[h * E + e] * f[e];
      max_err = std::max(max_err, std::abs(y - a.x_mid[r * H + h]));
    }
  }
  EXPECT_LT(max_err, 1e-12) << c.mixer;
}

TEST(ModelForward, FusionAveragesBothBranchesInHybrid) { check_fusion(small_config(4, 3)); }

TEST(ModelForward, AttentionOnlyBlockIsOutProjOfNormalisedAttention) {
  check_fusion(attention_only(small_config(4, 3)));
}

TEST(ModelForward, MambaOnlyBlockIsOutProjOfNormalisedScan) {
  check_fusion(mamba_only(small_config(4, 3)));
}

// small_config(4, 3) by hand: H 16, E 32, I 24, V 11, M 3, N 4, K 3, R 2, hd 8, vd 16, one KV
// head; layer 2 consumes layer 1's KV.
//   every layer: input + MLP norms 2·16, out_proj 16·32, MLP 3·16·24           = 1696
//   attention:   in_proj q | k | v (16 + 8 + 16 rows)·16 = 640 (consumer: q only, 16·16 = 256),
//                pre_avg_layernorm1 32                                          = 672 (288)
//   Mamba:       in_proj x | z 64·16 = 1024, conv1d 32·3 + 32, x_proj (2 + 2·4)·32 = 320,
//                dt_proj 32·2 + 32, A_log 32·4, D 32, dt/B/C norms 2 + 4 + 4,
//                pre_avg_layernorm2 32                                          = 1770
//   embedding 11·16 + meta tokens 3·16 + final norm 16                          = 240
TEST(ParamLayout, EachMixerHasOnlyItsBranchesTensors) {
  const ModelConfig hybrid = small_config(4, 3);
  const int64_t common = 1696, attn = 672, attn_consumer = 288, mamba = 1770, outer = 240;
  struct Case {
    ModelConfig config;
    int64_t count;
    std::vector<int64_t> in_proj_rows;
    std::vector<std::string> absent;  // name fragments no tensor may have
  };
  const std::vector<Case> cases = {
      {hybrid, outer + 3 * (common + attn + mamba) + (common + attn_consumer + mamba),
       {104, 104, 80, 104}, {}},
      {attention_only(hybrid), outer + 3 * (common + attn) + (common + attn_consumer),
       {40, 40, 16, 40},
       {"conv1d", "x_proj", "dt_proj", "A_log", "D.0", "dt_layernorm", "B_layernorm",
        "C_layernorm", "pre_avg_layernorm2"}},
      {mamba_only(hybrid), outer + 4 * (common + mamba), {64, 64, 64, 64}, {"pre_avg_layernorm1"}},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.config.mixer);
    const auto plan = plan_layers(k.config);
    const ParamLayout layout = build_param_layout(k.config, plan);
    EXPECT_EQ(layout.count, k.count);
    EXPECT_EQ(describe_model(k.config, 8).parameters, k.count);
    for (size_t l = 0; l < plan.size(); ++l) EXPECT_EQ(plan[l].in_proj_rows, k.in_proj_rows[l]) << l;
    for (const ParamTensor& t : layout.tensors) {
      EXPECT_TRUE(t.name.starts_with("model.")) << t.name;  // HF names, as in hybrid
      for (const std::string& a : k.absent) EXPECT_EQ(t.name.find(a), std::string::npos) << t.name;
    }
  }
}

// --info and the activation plan drop what an absent branch would cost. The Linears' FLOPs are
// those of the matrix parameters (each weight is one multiply-add per position); attention FLOPs
// need attention heads.
TEST(ModelInfo, EachMixerCountsOnlyItsBranches) {
  const ModelConfig hybrid = small_config(4, 3);
  const int64_t T = 8, S = hybrid.num_memory_tokens + T;
  const ModelInfo h = describe_model(hybrid, T), a = describe_model(attention_only(hybrid), T),
                  m = describe_model(mamba_only(hybrid), T);
  for (const ModelInfo* info : {&h, &a, &m}) {
    int64_t matrix = 0;
    for (const auto& [kind, n] : info->params_by_kind) matrix += kind == "matrix" ? n : 0;
    const double lm_head = 2.0 * hybrid.vocab_size * hybrid.hidden_size;
    EXPECT_DOUBLE_EQ(info->matmul_flops, 2.0 * double(matrix) * double(S) / double(T) + lm_head);
  }
  EXPECT_GT(h.attention_flops, 0);
  EXPECT_EQ(a.attention_flops, h.attention_flops);
  EXPECT_EQ(m.attention_flops, 0);
  EXPECT_EQ(m.global_layers, 0);  // global_attn_idx is ignored without attention
  // Saved activations per position and layer, by hand: Mamba keeps its in_proj columns 2E, u,
  // delta and scan 3E (not the conv pre-activation: its backward computes it again), x_proj
  // output with each piece padded to 8 columns (dt 2 -> 8, B and C 4 -> 8) 24, normalised dt
  // (padded) 8, B and C 2N = 8, and 4 norm statistics: 5·32 + 24 + 8 + 8 + 4 = 204. Attention keeps its in_proj columns (40, a
  // consumer 16), rotated q 16 and k 8 (a consumer none), output 32, log-sum-exp 2 and 1 norm
  // statistic: 99 (a consumer 67).
  const auto saved = [&](const ModelConfig& c) { return plan_floats(c, 1, T, Recompute::none).saved; };
  EXPECT_DOUBLE_EQ(saved(hybrid) - saved(attention_only(hybrid)), 4.0 * 204 * S);
  EXPECT_DOUBLE_EQ(saved(hybrid) - saved(mamba_only(hybrid)), (3.0 * 99 + 67) * S);
}

TEST(ModelInfo, AttentionPairsCountTheMask) {
  // Global: S(S+1)/2. Local with window 2 and 1 meta token over 5 positions:
  // q=0:1, q=1:2, q=2:3, q=3:3+1 meta, q=4:3+1 meta = 14.
  EXPECT_EQ(attention_pairs(true, 5, 2, 1), 15);
  EXPECT_EQ(attention_pairs(false, 5, 2, 1), 14);
  EXPECT_EQ(attention_pairs(false, 5, 2, 0), 12);
}

}  // namespace
}  // namespace hymba::test
