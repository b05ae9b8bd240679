// Export to and import from the official HF format: the safetensors writer and reader, bf16
// rounding, config.json both ways, the whole model folder, and the hymba-export / hymba-import
// command lines end to end.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <list>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "config/config.h"
#include "core/json.h"
#include "core/rng.h"
#include "io/checkpoint.h"
#include "io/hf_config.h"
#include "io/hf_model.h"
#include "io/safetensors.h"
#include "model/layer_plan.h"
#include "model/param_layout.h"
#include "test_util.h"

namespace hymba::test {
namespace {

namespace fs = std::filesystem;

const std::string kTiny = std::string(HYMBA_SOURCE_DIR) + "/configs/tiny.yaml";
const std::string k1p5B = std::string(HYMBA_SOURCE_DIR) + "/configs/hymba-1.5b.yaml";

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

float from_bits(uint32_t b) { return std::bit_cast<float>(b); }
uint32_t bits(float x) { return std::bit_cast<uint32_t>(x); }

ParamLayout layout_of(const ModelConfig& m) { return build_param_layout(m, plan_layers(m)); }

// Parameters that exercise every bit pattern class: random 32-bit words (NaNs, infinities and
// subnormals included) in the tensors, zeros in the padding.
std::vector<float> random_params(const ParamLayout& layout) {
  std::vector<float> p(size_t(layout.storage), 0.0f);
  for (const ParamTensor& t : layout.tensors)
    for (const SliceRun& r : slice_runs(t, layout.tp))
      for (int64_t i = t.offset + r.local; i < t.offset + r.local + r.length; ++i)
        p[size_t(i)] = from_bits(uint32_t(mix64(uint64_t(i))));
  return p;
}

// ---- bf16 rounding ------------------------------------------------------------------------------

TEST(Bf16, RoundsToNearestEvenOnAwkwardValues) {
  const struct {
    uint32_t in;
    uint16_t out;
    const char* what;
  } cases[] = {
      {0x3F800000, 0x3F80, "1.0 is exact"},
      {0x3F807FFF, 0x3F80, "just below half an ulp: down"},
      {0x3F808000, 0x3F80, "halfway, even below: down"},
      {0x3F808001, 0x3F81, "just above half an ulp: up"},
      {0x3F818000, 0x3F82, "halfway, odd below: up to even"},
      {0xBF818000, 0xBF82, "negative halfway: magnitude to even"},
      {0x00000001, 0x0000, "smallest subnormal: to zero"},
      {0x00008000, 0x0000, "subnormal halfway, even below: down to zero"},
      {0x00018000, 0x0002, "subnormal halfway, odd below: up"},
      {0x007FFFFF, 0x0080, "largest subnormal: up to the smallest normal"},
      {0x80008000, 0x8000, "negative subnormal halfway: to -0"},
      {0x80000000, 0x8000, "-0 stays -0"},
      {0x7F7F7FFF, 0x7F7F, "below half an ulp under the largest bf16: the largest bf16"},
      {0x7F7F8000, 0x7F80, "halfway past the largest bf16 (odd): to infinity"},
      {0x7F7FFFFF, 0x7F80, "the largest float: to infinity"},
      {0xFF7FFFFF, 0xFF80, "the most negative float: to -infinity"},
      {0x7F800000, 0x7F80, "infinity"},
      {0xFF800000, 0xFF80, "-infinity"},
      {0x7FC00000, 0x7FC0, "quiet NaN"},
      {0x7F800001, 0x7FC0, "signalling NaN with a low payload: NaN, not infinity"},
      {0x7FFFFFFF, 0x7FC0, "NaN whose rounding would carry"},
      {0xFFC00001, 0x7FC0, "negative NaN: the canonical NaN, as torch"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(float_to_bf16(from_bits(c.in)), c.out) << c.what << " (0x" << std::hex << c.in << ")";
  }
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(bf16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(bits(bf16_to_float(0x0001)), 0x00010000u);  // a bf16 subnormal widens exactly
}

// The nearest bf16 by exact arithmetic in double, ties to the even pattern; past the largest
// finite bf16 the next value up is 2^128, which rounds to infinity.
uint16_t reference_bf16(float x) {
  const uint32_t b = bits(x);
  if (std::isnan(x)) return 0x7FC0;
  const uint16_t lo = uint16_t(b >> 16), hi = uint16_t(lo + 1);  // magnitude below / above
  if ((b & 0xFFFF) == 0) return lo;
  const double below = double(from_bits(uint32_t(lo) << 16));
  const double above = (hi & 0x7FFF) == 0x7F80 ? std::copysign(std::ldexp(1.0, 128), x)
                                               : double(from_bits(uint32_t(hi) << 16));
  const double d_below = std::fabs(double(x) - below), d_above = std::fabs(above - double(x));
  if (d_below != d_above) return d_below < d_above ? lo : hi;
  return (lo & 1) == 0 ? lo : hi;
}

TEST(Bf16, MatchesExactRoundingOnEveryExponentAndTie) {
  // Every upper half (every sign, exponent and kept mantissa) with the dropped halves that
  // matter: exact, just above, just below and at the tie, and the extremes.
  int64_t checked = 0;
  for (uint32_t upper = 0; upper <= 0xFFFF; ++upper) {
    for (uint32_t lower : {0x0000u, 0x0001u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu, 0x1234u, 0xC000u}) {
      const float x = from_bits(upper << 16 | lower);
      ASSERT_EQ(float_to_bf16(x), reference_bf16(x)) << std::hex << (upper << 16 | lower);
      ++checked;
    }
  }
  EXPECT_EQ(checked, 65536 * 8);
}

// ---- the safetensors file -----------------------------------------------------------------------

class Safetensors : public TempDirTest {
 protected:
  // A file with this header (padded to 8 as a writer would) and `data_bytes` zero bytes.
  std::string craft(const std::string& name, std::string header, uint64_t data_bytes) const {
    header.append((8 - header.size() % 8) % 8, ' ');
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((uint64_t(header.size()) >> (8 * i)) & 0xFF);
    return write(name, bytes + header + std::string(data_bytes, '\0'));
  }
};

TEST_F(Safetensors, HeaderIsCompactJsonAsTheReferenceWritesIt) {
  // The same tensor as the reference implementation's test_serialization_forced_alignement,
  // plus the metadata torch's save_file adds: no spaces, keys dtype/shape/data_offsets, padded.
  const float values[6] = {0, 1, 2, 3, 4, 5};
  const std::string file = path("a.safetensors");
  write_safetensors(file, {{"attn0", {1, 1, 2, 3}, values}}, StDtype::f32);
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}})";
  ASSERT_EQ(header.size() % 8, 0u);  // this one needs no padding
  std::string want(8, '\0');
  want[0] = char(header.size());
  want += header;
  want.append(reinterpret_cast<const char*>(values), sizeof values);
  EXPECT_EQ(read_bytes(file), want);
}

TEST_F(Safetensors, WrittenFileParsesIndependentlyOfTheReader) {
  // Awkward sizes so the header needs padding and the tensors are not multiples of anything.
  std::vector<float> a(3 * 5), b(7), c(1);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i) * 0.37f - 2.1f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = 1.0f / float(i + 3);
  c[0] = 65504.5f;
  const std::vector<StTensorData> tensors = {{"zeta.w", {3, 5}, a.data()}, {"alpha", {7}, b.data()},
                                             {"Mid.scalar", {}, c.data()}};
  for (StDtype dtype : {StDtype::f32, StDtype::bf16}) {
    SCOPED_TRACE(st_dtype_name(dtype));
    const std::string file = path("t.safetensors");
    write_safetensors(file, tensors, dtype);
    const std::string bytes = read_bytes(file);
    ASSERT_GE(bytes.size(), 8u);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = n << 8 | uint8_t(bytes[size_t(i)]);
    ASSERT_LE(8 + n, bytes.size());
    EXPECT_EQ((8 + n) % 8, 0u) << "the data area must start 8-byte aligned";
    const std::string header = bytes.substr(8, n);
    const size_t end = header.find_last_not_of(' ');
    EXPECT_EQ(header[end], '}');  // only spaces pad it
    const JsonValue root = parse_json(header, {"header"});
    const auto& members = root.as_object();
    ASSERT_EQ(members.size(), 4u);
    EXPECT_EQ(members[0].first, "__metadata__");
    EXPECT_EQ(members[0].second.find("format")->as_string(), "pt");
    // Data order is byte-wise name order: uppercase sorts first.
    const std::vector<std::string> order = {"Mid.scalar", "alpha", "zeta.w"};
    const std::vector<std::vector<int64_t>> shapes = {{}, {7}, {3, 5}};
    const std::vector<const float*> data = {c.data(), b.data(), a.data()};
    const int64_t size = dtype == StDtype::f32 ? 4 : 2;
    uint64_t offset = 0;
    for (size_t k = 0; k < order.size(); ++k) {
      const auto& [name, entry] = members[k + 1];
      EXPECT_EQ(name, order[k]);
      EXPECT_EQ(entry.find("dtype")->as_string(), dtype == StDtype::f32 ? "F32" : "BF16");
      std::vector<int64_t> shape;
      int64_t numel = 1;
      for (const JsonValue& d : entry.find("shape")->as_array()) {
        shape.push_back(d.as_int());
        numel *= d.as_int();
      }
      EXPECT_EQ(shape, shapes[k]);
      const auto& off = entry.find("data_offsets")->as_array();
      ASSERT_EQ(off.size(), 2u);
      EXPECT_EQ(uint64_t(off[0].as_int()), offset) << name << ": tensors follow each other without gaps";
      EXPECT_EQ(off[1].as_int() - off[0].as_int(), numel * size);
      for (int64_t i = 0; i < numel; ++i) {
        const char* at = bytes.data() + 8 + n + offset + uint64_t(i * size);
        if (dtype == StDtype::f32) {
          float v;
          std::memcpy(&v, at, 4);
          EXPECT_EQ(bits(v), bits(data[k][i])) << name << "[" << i << "]";
        } else {
          const uint16_t v = uint16_t(uint8_t(at[0]) | uint8_t(at[1]) << 8);  // little-endian
          EXPECT_EQ(v, reference_bf16(data[k][i])) << name << "[" << i << "]";
        }
      }
      offset = uint64_t(off[1].as_int());
    }
    EXPECT_EQ(8 + n + offset, bytes.size()) << "the last tensor ends the file";
  }
}

TEST_F(Safetensors, ReadsBackF32ExactlyAndBf16Rounded) {
  std::vector<float> v(1000);
  for (size_t i = 0; i < v.size(); ++i) v[i] = from_bits(uint32_t(mix64(i)));
  v[0] = from_bits(0x3F808000);
  v[1] = std::numeric_limits<float>::infinity();
  v[2] = std::numeric_limits<float>::denorm_min();
  for (StDtype dtype : {StDtype::f32, StDtype::bf16}) {
    SCOPED_TRACE(st_dtype_name(dtype));
    write_safetensors(path("v.safetensors"), {{"v", {10, 100}, v.data()}}, dtype);
    SafetensorsReader r(path("v.safetensors"));
    ASSERT_EQ(r.tensors().size(), 1u);
    EXPECT_EQ(r.metadata(), (std::vector<std::pair<std::string, std::string>>{{"format", "pt"}}));
    const StTensorInfo* t = r.find("v");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->shape, (std::vector<int64_t>{10, 100}));
    std::vector<float> back(v.size());
    r.read(*t, back.data());
    for (size_t i = 0; i < v.size(); ++i) {
      const float want = dtype == StDtype::f32 ? v[i] : bf16_to_float(reference_bf16(v[i]));
      ASSERT_EQ(bits(back[i]), bits(want)) << i;
    }
  }
  EXPECT_FALSE(fs::exists(path("v.safetensors.tmp")));
}

TEST_F(Safetensors, RefusesDamagedFiles) {
  const float values[4] = {1, 2, 3, 4};
  const std::string good = path("good.safetensors");
  write_safetensors(good, {{"a", {2}, values}, {"b", {2}, values + 2}}, StDtype::f32);
  const std::string bytes = read_bytes(good);
  const auto open = [](const std::string& file) { return [file] { SafetensorsReader r(file); }; };

  const std::string truncated = write("truncated.safetensors", bytes.substr(0, bytes.size() - 1));
  expect_error(open(truncated), {truncated, "truncated"});
  const std::string trailing = write("trailing.safetensors", bytes + "x");
  expect_error(open(trailing), {trailing, "trailing"});
  const std::string tiny = write("tiny.safetensors", bytes.substr(0, 5));
  expect_error(open(tiny), {tiny, "too short"});

  std::string past = bytes;
  past[0] = char(0xF0);  // header length 240 + ...: beyond this file
  past[1] = char(0x01);
  const std::string past_file = write("past.safetensors", past);
  expect_error(open(past_file), {past_file, "header length 496", "runs past the end"});
  std::string huge = bytes;
  huge[7] = char(0x01);
  const std::string huge_file = write("huge.safetensors", huge);
  expect_error(open(huge_file), {huge_file, "larger than the limit"});

  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string overlap = craft("overlap.safetensors",
      "{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12);
  expect_error(open(overlap), {overlap, "tensor b", "[4, 12]", "overlap tensor a"});
  const std::string gap = craft("gap.safetensors",
      "{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})", 20);
  expect_error(open(gap), {gap, "tensor b", "gap"});
  const std::string late = craft("late.safetensors",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12);
  expect_error(open(late), {late, "tensor a", "gap"});
  const std::string size = craft("size.safetensors",
      R"({"a":{"dtype":"BF16","shape":[4],"data_offsets":[0,16]}})", 16);
  expect_error(open(size), {size, "tensor a", "hold 16 bytes", "[4] in BF16 needs 8"});
  const std::string backwards = craft("backwards.safetensors",
      R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", 8);
  expect_error(open(backwards), {backwards, "tensor a", "end before they begin"});
  const std::string f16 = craft("f16.safetensors",
      R"({"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})", 8);
  expect_error(open(f16), {f16, "tensor a", "F16 is not supported"});
  const std::string json = craft("json.safetensors", R"({"a":{"dtype":"F32",)", 0);
  expect_error(open(json), {json, "line 1"});
  const std::string negative = craft("negative.safetensors",
      R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4);
  expect_error(open(negative), {negative, "tensor a", "non-negative"});
}

// ---- names and shapes of the model folder ---------------------------------------------------------

// HYMBA_SPEC §3, written out again here: every decoder layer's tensors and their shapes.
using Shapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;

Shapes spec_layer_tensors(const ModelConfig& m, int64_t layer, bool consumer) {
  const int64_t H = m.hidden_size, E = m.mamba_expand * H, R = m.mamba_dt_rank, N = m.mamba_d_state;
  const int64_t K = m.mamba_d_conv, I = m.intermediate_size, hd = H / m.num_attention_heads;
  const int64_t vd = E / m.num_attention_heads, nkv = m.num_key_value_heads;
  const int64_t d_in = consumer ? 2 * E + H : 2 * E + H + nkv * hd + nkv * vd;
  const std::string p = "model.layers." + std::to_string(layer) + ".", s = p + "mamba.";
  return {{p + "input_layernorm.weight", {H}},       {p + "pre_moe_layernorm.weight", {H}},
          {s + "in_proj.weight", {d_in, H}},         {s + "out_proj.weight", {H, E}},
          {s + "conv1d.weight", {E, 1, K}},          {s + "conv1d.bias", {E}},
          {s + "x_proj.0.weight", {R + 2 * N, E}},   {s + "dt_proj.0.weight", {E, R}},
          {s + "dt_proj.0.bias", {E}},               {s + "A_log.0", {E, N}},
          {s + "D.0", {E}},                          {s + "dt_layernorm.weight", {R}},
          {s + "B_layernorm.weight", {N}},           {s + "C_layernorm.weight", {N}},
          {s + "pre_avg_layernorm1.weight", {E}},    {s + "pre_avg_layernorm2.weight", {E}},
          {p + "moe.experts.0.gate_proj.weight", {I, H}}, {p + "moe.experts.0.up_proj.weight", {I, H}},
          {p + "moe.experts.0.down_proj.weight", {H, I}}};
}

void expect_spec_tensors(const ModelConfig& m, const std::set<int64_t>& consumers) {
  std::set<std::pair<std::string, std::vector<int64_t>>> want = {
      {"model.embed_tokens.weight", {m.vocab_size, m.hidden_size}},
      {"model.memory_tokens", {m.num_memory_tokens, m.hidden_size}},
      {"model.final_layernorm.weight", {m.hidden_size}}};
  for (int64_t l = 0; l < m.num_hidden_layers; ++l)
    for (auto& t : spec_layer_tensors(m, l, consumers.count(l) > 0)) want.insert(t);
  const auto shapes = hf_tensor_shapes(layout_of(m));
  const std::set<std::pair<std::string, std::vector<int64_t>>> got(shapes.begin(), shapes.end());
  EXPECT_EQ(shapes.size(), got.size()) << "a name appears twice";
  EXPECT_EQ(got, want);
  EXPECT_EQ(size_t(2 + 19 * m.num_hidden_layers + 1), shapes.size());
  for (const auto& [name, shape] : shapes) EXPECT_NE(name, "lm_head.weight") << "tied: left out";
}

TEST(HfModel, TinyTensorsAreTheSpecsNamesAndShapes) {
  const Config c = load_config(kTiny);
  expect_spec_tensors(c.model, {2});
}

TEST(HfModel, OfficialTensorsAndFileSizeOfThe1p5BModel) {
  const Config c = load_config(k1p5B);
  expect_spec_tensors(c.model, {2, 4, 6, 8, 10, 12, 14, 17, 18, 20, 22, 24, 26, 28, 30});
  const auto shapes = hf_tensor_shapes(layout_of(c.model));
  EXPECT_EQ(shapes.size(), 611u);
  const std::map<std::string, std::vector<int64_t>> by_name(shapes.begin(), shapes.end());
  EXPECT_EQ(by_name.at("model.layers.2.mamba.in_proj.weight"), (std::vector<int64_t>{8000, 1600}));
  EXPECT_EQ(by_name.at("model.layers.1.mamba.in_proj.weight"), (std::vector<int64_t>{8960, 1600}));
  EXPECT_EQ(by_name.at("model.layers.31.mamba.in_proj.weight"), (std::vector<int64_t>{8960, 1600}));
  EXPECT_EQ(by_name.at("model.layers.0.mamba.x_proj.0.weight"), (std::vector<int64_t>{132, 3200}));
  EXPECT_EQ(by_name.at("model.embed_tokens.weight"), (std::vector<int64_t>{32001, 1600}));
  // The released model.safetensors holds 3,045,665,048 bytes (HYMBA_SPEC §2.10): every tensor in
  // bf16 plus a 69,400-byte header. The same names, shapes, order and JSON give the same size.
  const StHeader h = safetensors_header(shapes, StDtype::bf16);
  EXPECT_EQ(h.tensors.back().end, 2u * 1'522'797'824u);
  EXPECT_EQ(8 + h.json.size() + h.tensors.back().end, 3'045'665'048u);
}

// ---- config.json ------------------------------------------------------------------------------------

// Every ModelConfig field config.json carries (the init choices dt_* are not model structure).
auto hf_fields(const ModelConfig& m) {
  return std::tie(m.hidden_size, m.num_hidden_layers, m.num_attention_heads, m.num_key_value_heads,
                  m.intermediate_size, m.vocab_size, m.mamba_expand, m.mamba_d_state, m.mamba_d_conv,
                  m.mamba_dt_rank, m.num_memory_tokens, m.sliding_window, m.global_attn_idx,
                  m.kv_reuse_group, m.rms_norm_eps, m.rope_theta, m.rope_type, m.max_position_embeddings,
                  m.orig_max_position_embeddings, m.pad_token_id, m.bos_token_id, m.eos_token_id,
                  m.initializer_range, m.mixer);
}

TEST(HfConfig, RoundTripsTheModel) {
  for (const std::string& file : {kTiny, k1p5B}) {
    SCOPED_TRACE(file);
    ModelConfig m = load_config(file).model;
    m.rms_norm_eps = 1.25e-5;  // values Python writes in exponent form and with fractions
    m.initializer_range = 0.0123;
    const ModelConfig back = model_config_from_hf(hf_config_json(m, StDtype::bf16), "config.json");
    EXPECT_TRUE(hf_fields(back) == hf_fields(m));
  }
}

TEST(HfConfig, The1p5BConfigHasTheOfficialValues) {
  const std::string text = hf_config_json(load_config(k1p5B).model, StDtype::bf16);
  const JsonValue j = parse_json(text, {"config.json"});
  const auto ints = [](const JsonValue& v) {
    std::vector<int64_t> out;
    for (const JsonValue& x : v.as_array()) out.push_back(x.as_int());
    return out;
  };
  EXPECT_EQ(j.find("architectures")->as_array().at(0).as_string(), "HymbaForCausalLM");
  EXPECT_EQ(j.find("model_type")->as_string(), "hymba");
  EXPECT_EQ(j.find("auto_map")->find("AutoConfig")->as_string(), "configuration_hymba.HymbaConfig");
  EXPECT_EQ(j.find("auto_map")->find("AutoModelForCausalLM")->as_string(), "modeling_hymba.HymbaForCausalLM");
  EXPECT_EQ(j.find("hidden_size")->as_int(), 1600);
  EXPECT_EQ(j.find("num_hidden_layers")->as_int(), 32);
  EXPECT_EQ(j.find("num_attention_heads")->as_int(), 25);
  EXPECT_EQ(j.find("num_key_value_heads")->as_int(), 5);
  EXPECT_EQ(j.find("intermediate_size")->as_int(), 5504);
  EXPECT_EQ(j.find("vocab_size")->as_int(), 32001);
  EXPECT_EQ(j.find("mamba_dt_rank")->as_int(), 100);
  EXPECT_EQ(j.find("num_memory_tokens")->as_int(), 128);
  EXPECT_EQ(j.find("sliding_window")->as_int(), 1024);
  EXPECT_EQ(ints(*j.find("global_attn_idx")), (std::vector<int64_t>{0, 15, 31}));
  std::vector<std::vector<int64_t>> groups;
  for (const JsonValue& g : j.find("kv_reuse_group")->as_array()) groups.push_back(ints(g));
  EXPECT_EQ(groups, (std::vector<std::vector<int64_t>>{{1, 2}, {3, 4}, {5, 6}, {7, 8}, {9, 10}, {11, 12},
                                                       {13, 14}, {16, 17, 18}, {19, 20}, {21, 22}, {23, 24},
                                                       {25, 26}, {27, 28}, {29, 30}}));
  EXPECT_EQ(j.find("rope_type")->as_string(), "ntk");
  EXPECT_TRUE(j.find("rope")->as_bool());
  EXPECT_EQ(j.find("rope_theta")->as_number(), 10000.0);
  EXPECT_EQ(j.find("rms_norm_eps")->as_number(), 1e-6);
  EXPECT_EQ(j.find("v_head_dim")->as_int(), 128);
  EXPECT_EQ(j.find("attn_hidden_size")->as_int(), -1);
  EXPECT_EQ(j.find("kq_head_dim")->as_int(), -1);
  EXPECT_EQ(j.find("kq_norm")->as_string(), "none");
  EXPECT_EQ(j.find("num_mamba")->as_int(), 1);
  EXPECT_EQ(j.find("num_experts")->as_int(), 1);
  EXPECT_EQ(j.find("mlp_hidden_act")->as_string(), "silu");
  EXPECT_EQ(j.find("max_position_embeddings")->as_int(), 8192);
  EXPECT_EQ(j.find("orig_max_position_embeddings")->as_int(), 2048);
  EXPECT_EQ(j.find("seq_length")->as_int(), 8192);
  EXPECT_FALSE(j.find("calc_logits_for_entire_prompt")->as_bool());
  EXPECT_TRUE(j.find("tie_word_embeddings")->as_bool());
  EXPECT_FALSE(j.find("mamba_proj_bias")->as_bool());
  EXPECT_TRUE(j.find("mamba_inner_layernorms")->as_bool());
  EXPECT_EQ(j.find("memory_tokens_interspersed_every")->as_int(), 0);
  EXPECT_EQ(j.find("torch_dtype")->as_string(), "bfloat16");
  EXPECT_EQ(j.find("conv_dim")->as_object().size(), 32u);
  EXPECT_EQ(j.find("conv_dim")->find("31")->as_int(), 3200);
  EXPECT_EQ(j.find("layer_type")->as_array().size(), 32u);
  EXPECT_EQ(j.find("layer_type")->as_array().at(31).as_string(), "h");
  // Exactly the official keys (HYMBA_SPEC §4), no more.
  const std::set<std::string> official = {
      "architectures", "attention_dropout", "attn_hidden_size", "attn_implementation",
      "attn_implementation_new", "auto_map", "bos_token_id", "calc_logits_for_entire_prompt", "conv_dim",
      "eos_token_id", "global_attn_idx", "hidden_act", "hidden_size", "initializer_range",
      "intermediate_size", "kq_head_dim", "kq_norm", "kv_reuse_every_i_layer", "kv_reuse_group",
      "kv_weight_reuse", "layer_type", "mamba_conv_bias", "mamba_d_conv", "mamba_d_state", "mamba_dt_rank",
      "mamba_expand", "mamba_inner_layernorms", "mamba_proj_bias", "max_position_embeddings",
      "memory_tokens_interspersed_every", "mlp_hidden_act", "model_type", "num_attention_heads",
      "num_experts", "num_experts_per_tok", "num_hidden_layers", "num_key_value_heads", "num_mamba",
      "num_memory_tokens", "orig_max_position_embeddings", "output_router_logits", "pad_token_id",
      "rms_norm_eps", "rope", "rope_theta", "rope_type", "router_aux_loss_coef", "seq_length",
      "sliding_window", "tie_word_embeddings", "torch_dtype", "transformers_version", "use_cache",
      "use_mamba_kernels", "v_head_dim", "vocab_size"};
  std::set<std::string> keys;
  for (const auto& [key, value] : j.as_object()) keys.insert(key);
  EXPECT_EQ(keys, official);
  // Laid out as transformers writes it: json.dumps(indent=2, sort_keys=True), Python's float repr.
  EXPECT_EQ(text.rfind("{\n  \"architectures\": [\n    \"HymbaForCausalLM\"\n  ],\n", 0), 0u) << text;
  for (const char* line : {"\n  \"rms_norm_eps\": 1e-06,\n", "\n  \"rope_theta\": 10000.0,\n",
                           "\n  \"attention_dropout\": 0.0,\n", "\n  \"initializer_range\": 0.02,\n",
                           "\n  \"conv_dim\": {\n    \"0\": 3200,\n    \"1\": 3200,\n    \"10\": 3200,\n",
                           "\n  \"kv_reuse_group\": [\n    [\n      1,\n      2\n    ],\n",
                           "\n  \"vocab_size\": 32001\n}\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  const JsonValue f32 = parse_json(hf_config_json(load_config(k1p5B).model, StDtype::f32), {"f32"});
  EXPECT_EQ(f32.find("torch_dtype")->as_string(), "float32");
}

TEST(HfConfig, RefusesWhatTheFrameworkCannotRepresent) {
  const std::string official = hf_config_json(load_config(k1p5B).model, StDtype::bf16);
  const auto edited = [&](const std::string& from, const std::string& to) {
    const size_t at = official.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    std::string s = official;
    return s.replace(at, from.size(), to);
  };
  const struct {
    std::string from, to, key;
  } cases[] = {
      {"\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", "tie_word_embeddings"},
      {"\"kq_norm\": \"none\"", "\"kq_norm\": \"rms\"", "kq_norm"},
      {"\"memory_tokens_interspersed_every\": 0", "\"memory_tokens_interspersed_every\": 4",
       "memory_tokens_interspersed_every"},
      {"\"num_experts\": 1", "\"num_experts\": 2", "num_experts"},
      {"\"mlp_hidden_act\": \"silu\"", "\"mlp_hidden_act\": \"relu2\"", "mlp_hidden_act"},
      {"\"rope\": true", "\"rope\": false", "rope"},
      {"\"mamba_inner_layernorms\": true", "\"mamba_inner_layernorms\": false", "mamba_inner_layernorms"},
      {"\"mamba_proj_bias\": false", "\"mamba_proj_bias\": true", "mamba_proj_bias"},
      {"\"v_head_dim\": 128", "\"v_head_dim\": 64", "v_head_dim"},
      {"\"model_type\": \"hymba\"", "\"model_type\": \"llama\"", "model_type"},
      {"\"attn_implementation_new\": \"flex\"", "\"attn_implementation_new\": \"sdpa\"",
       "attn_implementation_new"},
      {"\"hidden_size\": 1600,\n", "", "hidden_size: missing"},
      {"\"sliding_window\": 1024", "\"sliding_window\": 10.5", "sliding_window: expected an integer"},
  };
  for (const auto& c : cases) {
    const std::string text = edited(c.from, c.to);
    expect_error([&] { model_config_from_hf(text, "dir/config.json"); }, {"dir/config.json: " + c.key});
  }
  ModelConfig attention = load_config(kTiny).model;
  attention.mixer = "attention";
  expect_error([&] { hf_config_json(attention, StDtype::bf16); },
               {"model.mixer", "attention", "only hybrid"});
}

// ---- the model folder: export, import ---------------------------------------------------------------

class HfFolder : public TempDirTest {};

TEST_F(HfFolder, ExportThenImportRoundTripsEveryTensor) {
  const Config cfg = load_config(kTiny);
  const ParamLayout layout = layout_of(cfg.model);
  const std::vector<float> params = random_params(layout);
  for (StDtype dtype : {StDtype::f32, StDtype::bf16}) {
    SCOPED_TRACE(st_dtype_name(dtype));
    const std::string dir = path(st_dtype_name(dtype));
    const HfWritten w = write_hf_model(dir, cfg.model, layout, params.data(), dtype);
    EXPECT_EQ(w.tensors, int64_t(layout.tensors.size()));
    EXPECT_EQ(fs::file_size(dir + "/model.safetensors"), w.safetensors_bytes);

    std::vector<float> back(size_t(layout.storage), 0.0f);
    const HfRead r = read_hf_weights(dir + "/model.safetensors", layout, back.data());
    EXPECT_EQ(dtype == StDtype::f32 ? r.f32_tensors : r.bf16_tensors, int64_t(layout.tensors.size()));
    EXPECT_FALSE(r.had_lm_head);
    for (size_t i = 0; i < params.size(); ++i) {
      const float want = dtype == StDtype::f32 ? params[i] : bf16_to_float(reference_bf16(params[i]));
      ASSERT_EQ(bits(back[i]), bits(want)) << "element " << i;  // padding included: stays zero
    }

    const Config imported = import_config(dir, kTiny);
    EXPECT_TRUE(hf_fields(imported.model) == hf_fields(cfg.model));
    EXPECT_EQ(imported.resolved, cfg.resolved) << "config.json over the same recipe is the same config";
  }
}

TEST_F(HfFolder, ImportWithoutARecipeTakesTheDefaults) {
  const Config cfg = load_config(kTiny);
  const ParamLayout layout = layout_of(cfg.model);
  const std::vector<float> params(size_t(layout.storage), 0.5f);
  write_hf_model(path("hf"), cfg.model, layout, params.data(), StDtype::bf16);
  const Config c = import_config(path("hf"), "");
  EXPECT_TRUE(hf_fields(c.model) == hf_fields(cfg.model));
  EXPECT_EQ(c.train.steps, Config().train.steps);
  EXPECT_EQ(c.optim.lr, Config().optim.lr);
  EXPECT_EQ(c.data.format, "shards");
  EXPECT_EQ(c.data.train, fs::absolute(path("hf")).string());
}

TEST_F(HfFolder, ImportBlamesConfigJsonForAModelTheFrameworkRejects) {
  // Valid for HymbaConfig, but 3 heads do not divide hidden_size 64 here.
  std::string text = hf_config_json(load_config(kTiny).model, StDtype::bf16);
  const std::string heads = "\"num_attention_heads\": 4";
  ASSERT_NE(text.find(heads), std::string::npos);
  text.replace(text.find(heads), heads.size(), "\"num_attention_heads\": 3");
  const std::string json = write("hf/config.json", text);
  for (const std::string& recipe : {kTiny, std::string()}) {
    expect_error([&] { import_config(path("hf"), recipe); },
                 {json + ": model.num_attention_heads: 3 does not divide hidden_size 64"});
  }
}

TEST_F(HfFolder, ImportRefusesTensorsThatDoNotFit) {
  const ModelConfig m = load_config(kTiny).model;
  const ParamLayout layout = layout_of(m);
  const std::vector<float> params = random_params(layout);
  std::vector<StTensorData> tensors;
  std::list<std::vector<float>> packed;  // the padded tensors' HF elements
  for (const ParamTensor& t : layout.tensors) {
    tensors.push_back({t.name, t.full_shape, hf_elements(t, params.data(), packed.emplace_back())});
  }
  const float* embed = params.data() + layout.offsets.embed;
  const std::vector<int64_t> embed_shape = {m.vocab_size, m.hidden_size};
  std::vector<float> back(size_t(layout.storage));
  const auto import = [&](const std::vector<StTensorData>& file) {
    write_safetensors(path("m.safetensors"), file, StDtype::bf16);
    std::fill(back.begin(), back.end(), 0.0f);
    return read_hf_weights(path("m.safetensors"), layout, back.data());
  };

  auto with_head = tensors;
  with_head.push_back({"lm_head.weight", embed_shape, embed});
  EXPECT_TRUE(import(with_head).had_lm_head);

  std::vector<float> other(embed, embed + m.vocab_size * m.hidden_size);
  other[7] = 0.25f;
  auto untied = tensors;
  untied.push_back({"lm_head.weight", embed_shape, other.data()});
  expect_error([&] { import(untied); }, {"m.safetensors", "lm_head.weight differs", "tie_word_embeddings"});

  auto unknown = tensors;
  unknown.push_back({"model.layers.4.mamba.D.0", {m.mamba_expand * m.hidden_size}, params.data()});
  expect_error([&] { import(unknown); }, {"m.safetensors", "not parameters", "model.layers.4.mamba.D.0"});

  auto missing = tensors;
  missing.erase(missing.begin() + 5);
  expect_error([&] { import(missing); }, {"m.safetensors", "missing tensors: " + tensors[5].name});

  auto reshaped = tensors;
  reshaped[0].shape = {m.hidden_size, m.vocab_size};
  expect_error([&] { import(reshaped); },
               {"m.safetensors", "model.embed_tokens.weight", "has shape [64,1024]", "config.json gives [1024,64]"});
}

// ---- the command lines --------------------------------------------------------------------------------

const std::string kBin = std::string(HYMBA_BINARY_DIR) + "/bin/";
const std::string kCache = "data.cache_dir=" + test_cache_dir();

struct Loaded {
  Config cfg;
  CheckpointMeta meta;
  std::vector<float> params;
};

Loaded load(const std::string& checkpoint) {
  Loaded l;
  l.meta = read_checkpoint_meta(checkpoint);
  l.cfg = checkpoint_config(checkpoint, l.meta);
  const ParamLayout layout = layout_of(l.cfg.model);
  l.params.assign(size_t(layout.storage), 0.0f);
  const LoadedCheckpoint c = load_checkpoint(checkpoint, layout, l.params.data(), nullptr, nullptr);
  EXPECT_EQ(c.meta.step, l.meta.step);
  return l;
}

class HfCli : public TempDirTest {};

TEST_F(HfCli, TrainExportImportAndTrainOn) {
  const std::string run_dir = path("run");
  auto [status, out] = run_command(kBin + "hymba-train " + kTiny +
                           " train.steps=2 train.log_every=1 checkpoint.every=2 run.dir=" + run_dir + " " + kCache);
  ASSERT_EQ(status, 0) << out;
  const std::string trained = checkpoint_path(run_dir, 2);
  ASSERT_TRUE(fs::exists(trained)) << out;

  std::tie(status, out) = run_command(kBin + "hymba-export " + trained + " " + path("hf32") + " --dtype fp32");
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("79 tensors"), std::string::npos) << out;
  EXPECT_NE(out.find("in F32"), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(path("hf32/config.json")));
  std::tie(status, out) = run_command(kBin + "hymba-export " + trained + " " + path("hf16"));
  ASSERT_EQ(status, 0) << out;
  const Loaded original = load(trained);
  const ParamLayout layout = layout_of(original.cfg.model);
  EXPECT_EQ(fs::file_size(path("hf16/model.safetensors")) % 8, 0u);
  const uint64_t header = safetensors_header(hf_tensor_shapes(layout), StDtype::bf16).json.size();
  EXPECT_EQ(fs::file_size(path("hf16/model.safetensors")), 8 + header + 2 * uint64_t(layout.count));

  const std::string imported = path("imported.h5");
  std::tie(status, out) = run_command(kBin + "hymba-import " + path("hf32") + " " + imported + " " + kTiny);
  ASSERT_EQ(status, 0) << out;
  const Loaded back = load(imported);
  EXPECT_EQ(back.meta.step, 0);
  EXPECT_TRUE(hf_fields(back.cfg.model) == hf_fields(original.cfg.model));
  ASSERT_EQ(back.params.size(), original.params.size());
  EXPECT_EQ(std::memcmp(back.params.data(), original.params.data(), back.params.size() * sizeof(float)), 0)
      << "an fp32 export and import give the trained parameters bit for bit";

  // The trainer takes the imported checkpoint like its own (same recipe, so the configs agree).
  std::tie(status, out) = run_command(kBin + "hymba-train " + kTiny + " train.steps=1 train.resume=" + imported +
                              " run.dir=" + path("run2") + " " + kCache);
  EXPECT_EQ(status, 0) << out;

  std::tie(status, out) = run_command(kBin + "hymba-import " + path("hf16") + " " + path("bad.h5") + " " + kTiny +
                              " extra");
  EXPECT_EQ(status, 2) << out;
  fs::remove(path("hf32/model.safetensors"));
  std::tie(status, out) = run_command(kBin + "hymba-import " + path("hf32") + " " + path("bad.h5"));
  EXPECT_EQ(status, 1) << out;
  EXPECT_NE(out.find("model.safetensors"), std::string::npos) << out;
}

}  // namespace
}  // namespace hymba::test
