#include "model/param_layout.h"

#include <algorithm>

#include "core/error.h"

#ifdef HYMBA_HAVE_CUDA
#include <cuda_bf16.h>
#endif

namespace hymba {

const char* param_kind_name(ParamKind k) {
  switch (k) {
    case ParamKind::embedding: return "embedding";
    case ParamKind::meta: return "meta";
    case ParamKind::norm: return "norm";
    case ParamKind::matrix: return "matrix";
    case ParamKind::conv: return "conv";
    case ParamKind::bias: return "bias";
    case ParamKind::ssm: return "ssm";
  }
  return "?";
}

namespace {

constexpr int64_t kAlign = 64;  // elements: 256 B in fp32, so every tensor is vector-aligned

// Matrices (the embedding included) are what the GEMMs read, through the bf16 copy where the
// activations are bf16; every other tensor the kernels read in fp32 directly.
bool read_as_matrix(ParamKind kind) { return kind == ParamKind::matrix || kind == ParamKind::embedding; }

// Places tensors in three regions, one after the other: the matrices, in buckets ended by
// end_bucket(); then the fp32-read tensors, split by tensor parallelism first and replicated ones
// after them (so a shard's replicated elements are one run: DataParallel's norm), together one
// bucket ended by end_fp32_bucket(). A region starts where the one before it ends, so a layout is
// built twice: once to measure, once to place.
struct LayoutBuilder {
  enum Region { matrices, fp32_split, fp32_replicated };
  ParamLayout& out;
  int64_t bucket_align;
  int64_t region_begin[3] = {0, 0, 0};  // the placing pass's region starts (matrices: 0)
  int64_t used[3] = {0, 0, 0};          // elements of each region placed so far

  int64_t padded(int64_t n) const { return (n + bucket_align - 1) / bucket_align * bucket_align; }
  // Ends the matrix bucket that began at the previous end (or 0): pads its region to bucket_align.
  void end_bucket() {
    const int64_t begin = out.buckets.empty() ? 0 : out.buckets.back().end;
    used[matrices] = padded(used[matrices]);
    out.buckets.push_back({begin, used[matrices]});
    out.storage = used[matrices];
  }
  // After the last matrix bucket: the fp32-read regions become the last bucket.
  void end_fp32_bucket() {
    HYMBA_ASSERT(used[matrices] == region_begin[fp32_split] &&
                 region_begin[fp32_split] + used[fp32_split] == region_begin[fp32_replicated]);
    out.storage = region_begin[fp32_split] + padded(used[fp32_split] + used[fp32_replicated]);
    out.fp32_bucket = out.buckets.size();
    out.buckets.push_back({region_begin[fp32_split], out.storage});
  }
  // The region starts a placing pass uses: where the measuring pass's regions ended.
  static LayoutBuilder after(const LayoutBuilder& measured, ParamLayout& out) {
    LayoutBuilder b{out, measured.bucket_align};
    b.region_begin[fp32_split] = measured.used[matrices];
    b.region_begin[fp32_replicated] = b.region_begin[fp32_split] + measured.used[fp32_split];
    return b;
  }
  // A tensor of HF shape `full`; split: how tensor parallelism divides it (none: replicated).
  // padding: zeros inside it along a dimension that is not split.
  int64_t add(std::string name, std::vector<int64_t> full, ParamKind kind, InitRule init,
              TensorSplit split = {}, TensorPadding padding = {}) {
    HYMBA_ASSERT(padding.dim < 0 || padding.dim != split.dim);
    std::vector<int64_t> shape = full;
    if (split.dim >= 0) {
      if (split.pieces.empty()) split.pieces = {full[size_t(split.dim)]};
      int64_t local = 0;
      for (int64_t piece : split.pieces) local += split_chunk(piece, out.tp.size, split.multiple);
      shape[size_t(split.dim)] = local;
    }
    if (padding.dim >= 0) {
      int64_t local = 0;
      for (int64_t piece : padding.pieces) local += split_chunk(piece, 1, padding.multiple);
      shape[size_t(padding.dim)] = local;
    }
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    const Region r = read_as_matrix(kind) ? matrices : split.dim >= 0 ? fp32_split : fp32_replicated;
    const int64_t offset = region_begin[r] + used[r];
    out.tensors.push_back({std::move(name), std::move(shape), offset, numel, kind, init, std::move(full),
                           std::move(split), std::move(padding)});
    for (const SliceRun& run : slice_runs(out.tensors.back(), out.tp)) out.count += run.length;
    used[r] += (numel + kAlign - 1) / kAlign * kAlign;
    return offset;
  }
};

}  // namespace

// in_proj's row blocks (HYMBA_SPEC §2.4), each split over the tensor-parallel ranks by heads.
std::vector<int64_t> in_proj_pieces(const ModelConfig& c, const LayerSpec& s) {
  std::vector<int64_t> pieces;
  if (s.has_attention) {
    pieces.push_back(c.hidden_size);  // q
    if (s.kv_role != KvRole::consumer) {
      pieces.push_back(c.num_key_value_heads * c.head_dim());    // k
      pieces.push_back(c.num_key_value_heads * c.v_head_dim());  // v
    }
  }
  if (s.has_mamba) {
    pieces.push_back(c.inner_size());  // x
    pieces.push_back(c.inner_size());  // z
  }
  return pieces;
}

namespace {

// Every tensor of the model, in HF order, placed by b (its regions: LayoutBuilder).
void place_tensors(const ModelConfig& c, const std::vector<LayerSpec>& layers, LayoutBuilder& b) {
  const int64_t H = c.hidden_size, E = c.inner_size(), V = c.vocab_size, M = c.num_memory_tokens;
  const int64_t R = c.mamba_dt_rank, N = c.mamba_d_state, K = c.mamba_d_conv;
  const int64_t I = c.intermediate_size;
  ParamLayout& layout = b.out;
  using K_ = ParamKind;
  using I_ = InitRule;
  const TensorSplit rows{0, {}}, cols{1, {}};  // column-parallel (output rows), row-parallel
  layout.offsets.embed = b.add("model.embed_tokens.weight", {V, H}, K_::embedding, I_::embedding,
                               {0, {}, kVocabRowMultiple});
  layout.offsets.meta = b.add("model.memory_tokens", {M, H}, K_::meta, I_::unit_normal);
  b.end_bucket();  // bucket 0
  for (size_t l = 0; l < layers.size(); ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string m = p + "mamba.";
    LayerParams<int64_t> o;
    o.input_norm = b.add(p + "input_layernorm.weight", {H}, K_::norm, I_::ones);
    const std::vector<int64_t> pieces = in_proj_pieces(c, layers[l]);
    int64_t d_in = 0;
    for (int64_t piece : pieces) d_in += piece;
    o.in_proj = b.add(m + "in_proj.weight", {d_in, H}, K_::matrix, I_::normal, {0, pieces});
    o.out_proj = b.add(m + "out_proj.weight", {H, E}, K_::matrix, I_::normal, cols);
    if (layers[l].has_mamba) {
      o.conv_w = b.add(m + "conv1d.weight", {E, 1, K}, K_::conv, I_::normal, rows);
      o.conv_b = b.add(m + "conv1d.bias", {E}, K_::bias, I_::zeros, rows);
      o.x_proj = b.add(m + "x_proj.0.weight", {R + 2 * N, E}, K_::matrix, I_::normal, cols,
                       {0, {R, N, N}, kProjPieceMultiple});
      o.dt_proj_w = b.add(m + "dt_proj.0.weight", {E, R}, K_::matrix, I_::normal, rows,
                          {1, {R}, kProjPieceMultiple});
      // The activations are placed by x_proj_columns: the held weights must match it.
      const std::vector<ParamTensor>& held = b.out.tensors;
      HYMBA_ASSERT(held[held.size() - 2].shape[0] == x_proj_columns(R, N).width &&
                   held.back().shape[1] == x_proj_columns(R, N).dt_width);
      o.dt_proj_b = b.add(m + "dt_proj.0.bias", {E}, K_::bias, I_::dt_bias, rows);
      o.A_log = b.add(m + "A_log.0", {E, N}, K_::ssm, I_::a_log, rows);
      o.D = b.add(m + "D.0", {E}, K_::ssm, I_::ones, rows);
      o.dt_norm = b.add(m + "dt_layernorm.weight", {R}, K_::norm, I_::ones);
      o.B_norm = b.add(m + "B_layernorm.weight", {N}, K_::norm, I_::ones);
      o.C_norm = b.add(m + "C_layernorm.weight", {N}, K_::norm, I_::ones);
    }
    if (layers[l].has_attention) {  // the fusion norms, in HF order: attention's first
      o.attn_norm = b.add(m + "pre_avg_layernorm1.weight", {E}, K_::norm, I_::ones, rows);
    }
    if (layers[l].has_mamba) {
      o.ssm_norm = b.add(m + "pre_avg_layernorm2.weight", {E}, K_::norm, I_::ones, rows);
    }
    o.mlp_norm = b.add(p + "pre_moe_layernorm.weight", {H}, K_::norm, I_::ones);
    o.gate = b.add(p + "moe.experts.0.gate_proj.weight", {I, H}, K_::matrix, I_::normal, rows);
    o.up = b.add(p + "moe.experts.0.up_proj.weight", {I, H}, K_::matrix, I_::normal, rows);
    o.down = b.add(p + "moe.experts.0.down_proj.weight", {H, I}, K_::matrix, I_::normal, cols);
    layout.offsets.layers.push_back(o);
    b.end_bucket();  // bucket 1 + l
  }
  layout.offsets.final_norm = b.add("model.final_layernorm.weight", {H}, K_::norm, I_::ones);
}

}  // namespace

ParamLayout build_param_layout(const ModelConfig& c, const std::vector<LayerSpec>& layers,
                               int64_t bucket_multiple, TensorParallelRank tp) {
  HYMBA_ASSERT(bucket_multiple >= 1 && tp.size >= 1 && tp.rank >= 0 && tp.rank < tp.size);
  ParamLayout measured, layout;
  measured.tp = layout.tp = tp;
  LayoutBuilder measure{measured, kAlign * bucket_multiple};
  place_tensors(c, layers, measure);
  LayoutBuilder b = LayoutBuilder::after(measure, layout);
  place_tensors(c, layers, b);
  b.end_fp32_bucket();
  return layout;
}

namespace {

// Along one dimension: HF elements [full, full + count) sit at [local, local + count).
struct DimSegment {
  int64_t full, local, count;
};

// A dimension made of `pieces`, each cut into `parts` chunks of split_chunk(piece, parts,
// multiple) of which this tensor holds chunk `part` (parts 1: the whole piece, padded).
std::vector<DimSegment> dim_segments(const std::vector<int64_t>& pieces, int64_t parts, int64_t part,
                                     int64_t multiple) {
  std::vector<DimSegment> out;
  int64_t full_at = 0, local_at = 0;
  for (int64_t piece : pieces) {
    const int64_t chunk = split_chunk(piece, parts, multiple);
    const int64_t first = std::min(piece, part * chunk);
    const int64_t count = std::min(piece, first + chunk) - first;
    if (count > 0) out.push_back({full_at + first, local_at, count});
    full_at += piece;
    local_at += chunk;
  }
  return out;
}

}  // namespace

std::vector<SliceRun> slice_runs(const ParamTensor& t, TensorParallelRank tp) {
  const size_t rank = t.full_shape.size();
  HYMBA_ASSERT(rank > 0);
  // Each dimension's segments: the split one's, the padded one's, or the whole dimension.
  std::vector<std::vector<DimSegment>> segments(rank);
  size_t last = 0;  // the last dimension that is split or padded; those after it are contiguous
  for (size_t d = 0; d < rank; ++d) {
    if (int(d) == t.split.dim) {
      segments[d] = dim_segments(t.split.pieces, tp.size, tp.rank, t.split.multiple);
      last = d;
    } else if (int(d) == t.padding.dim) {
      segments[d] = dim_segments(t.padding.pieces, 1, 0, t.padding.multiple);
      last = d;
    } else {
      segments[d] = {{0, 0, t.full_shape[d]}};
    }
  }
  int64_t inner = 1;
  for (size_t d = last + 1; d < rank; ++d) inner *= t.full_shape[d];
  std::vector<SliceRun> runs;
  const auto add = [&runs](int64_t full, int64_t local, int64_t length) {
    if (length == 0) return;
    SliceRun* back = runs.empty() ? nullptr : &runs.back();
    if (back && back->full + back->length == full && back->local + back->length == local) back->length += length;
    else runs.push_back({full, local, length});
  };
  // Walks dimensions 0..last: full/local are the row-major offsets (in units of the current
  // dimension's elements) of the block being walked.
  const auto walk = [&](const auto& self, size_t d, int64_t full, int64_t local) -> void {
    for (const DimSegment& s : segments[d]) {
      if (d == last) {
        add((full * t.full_shape[d] + s.full) * inner, (local * t.shape[d] + s.local) * inner, s.count * inner);
        continue;
      }
      for (int64_t i = 0; i < s.count; ++i) {
        self(self, d + 1, full * t.full_shape[d] + s.full + i, local * t.shape[d] + s.local + i);
      }
    }
  };
  walk(walk, 0, 0, 0);
  return runs;
}

bool holds_hf_order(const ParamTensor& t) {
  const std::vector<SliceRun> runs = slice_runs(t, {});
  return runs.size() <= 1;  // one run starts at 0 in both (the HF tensor's first element is held)
}

const float* hf_elements(const ParamTensor& t, const float* buffer, std::vector<float>& scratch) {
  if (holds_hf_order(t)) return buffer + t.offset;
  scratch.resize(size_t(t.full_numel()));
  for (const SliceRun& r : slice_runs(t, {})) {
    std::copy_n(buffer + t.offset + r.local, r.length, scratch.data() + r.full);
  }
  return scratch.data();
}

void store_hf_elements(const ParamTensor& t, const float* hf, float* buffer) {
  for (const SliceRun& r : slice_runs(t, {})) std::copy_n(hf + r.full, r.length, buffer + t.offset + r.local);
}

namespace {

// Copies every tensor's runs between the whole-model layout and tensor-parallel rank part.tp's.
template <bool kToPart>
void copy_runs(const ParamLayout& full, const ParamLayout& part, const float* from, float* to) {
  HYMBA_ASSERT(full.tp.size == 1 && full.tensors.size() == part.tensors.size());
  for (size_t i = 0; i < part.tensors.size(); ++i) {
    const ParamTensor& f = full.tensors[i];
    const ParamTensor& p = part.tensors[i];
    HYMBA_ASSERT(f.name == p.name);
    for_each_overlap(slice_runs(f, full.tp), slice_runs(p, part.tp),
                     [&](int64_t at_full, int64_t at_part, int64_t length) {
                       if (kToPart) std::copy_n(from + f.offset + at_full, length, to + p.offset + at_part);
                       else std::copy_n(from + p.offset + at_part, length, to + f.offset + at_full);
                     });
  }
}

}  // namespace

void full_to_part(const ParamLayout& full, const float* from, const ParamLayout& part, float* to) {
  copy_runs<true>(full, part, from, to);
}

void part_to_full(const ParamLayout& part, const float* from, const ParamLayout& full, float* to) {
  copy_runs<false>(full, part, from, to);
}

cpu::VocabRange vocab_range(int64_t V, TensorParallelRank tp) {
  const int64_t chunk = vocab_rows_per_rank(V, tp.size);
  const int64_t begin = std::min(V, int64_t(tp.rank) * chunk);
  return {begin, std::min(V, begin + chunk)};
}

template <class T>
ModelParams<T*> param_views(const ParamLayout& layout, T* base, int64_t end) {
  const auto at = [base, end](int64_t offset) { return offset == kAbsent || offset >= end ? nullptr : base + offset; };
  const ModelParams<int64_t>& o = layout.offsets;
  ModelParams<T*> v{at(o.embed), at(o.meta), at(o.final_norm), {}};
  for (const LayerParams<int64_t>& l : o.layers) {
    v.layers.push_back({at(l.input_norm), at(l.in_proj), at(l.conv_w), at(l.conv_b), at(l.x_proj),
                        at(l.dt_proj_w), at(l.dt_proj_b), at(l.A_log), at(l.D), at(l.dt_norm),
                        at(l.B_norm), at(l.C_norm), at(l.attn_norm), at(l.ssm_norm),
                        at(l.out_proj), at(l.mlp_norm), at(l.gate), at(l.up), at(l.down)});
  }
  return v;
}

template ModelParams<float*> param_views<float>(const ParamLayout&, float*, int64_t);
template ModelParams<double*> param_views<double>(const ParamLayout&, double*, int64_t);
#ifdef HYMBA_HAVE_CUDA
template ModelParams<__nv_bfloat16*> param_views<__nv_bfloat16>(const ParamLayout&, __nv_bfloat16*, int64_t);
#endif

}  // namespace hymba
