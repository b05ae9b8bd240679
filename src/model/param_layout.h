// Where every parameter lives. Parameters, gradients and optimizer moments each sit in one flat
// buffer with the same layout; a tensor is an (offset, shape) in it, named as in the official
// HF state_dict (HYMBA_SPEC §3), so export and checkpoints are a walk over this list.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "config/config.h"
#include "cpu/vocab_range.h"
#include "model/dims.h"
#include "model/layer_plan.h"

namespace hymba {

// What a tensor is, for weight decay choices and the --info summary.
enum class ParamKind { embedding, meta, norm, matrix, conv, bias, ssm };
const char* param_kind_name(ParamKind k);

// How a tensor starts (HYMBA_SPEC §3 and the dt_init choice of §6).
enum class InitRule {
  normal,     // N(0, initializer_range)
  embedding,  // N(0, initializer_range), row pad_token_id zeroed
  unit_normal,// N(0, 1): memory tokens (torch.randn)
  zeros,
  ones,
  a_log,      // log(1..N) on every row (S4D-real)
  dt_bias,    // zeros (dt_init: zero) or inverse-softplus of log-uniform dt (dt_init: mamba)
};

// This rank's part of the run of tensor-parallel ranks (DESIGN.md §5): rank of size.
struct TensorParallelRank {
  int rank = 0, size = 1;
};

// How a tensor-parallel rank's tensor relates to the whole (HF) tensor. Along `dim` the whole
// tensor is a row of pieces (in_proj's rows: q | k | v | x | z; otherwise one piece, the whole
// dim); each piece splits into `size` chunks of split_chunk(piece, size, multiple), and rank r
// holds chunk r of every piece, in piece order. Only the vocabulary does not divide: its chunks
// are rounded up to kVocabRowMultiple rows (model/dims.h), so the last ones end in zero padding
// that no token reads (with one rank too).
struct TensorSplit {
  int dim = -1;                 // -1: every rank holds the whole tensor (replicated)
  std::vector<int64_t> pieces;  // the whole tensor's sizes along dim, in order
  int64_t multiple = 1;         // chunks are rounded up to a multiple of this (split_chunk)
};

// Zero padding inside a tensor along a dimension that is not split: the whole dimension is a
// row of pieces, each held rounded up to a multiple of `multiple` with zeros after it. It keeps
// the GEMM operands of x_proj and dt_proj 16-byte aligned (model/dims.h, XProjColumns).
struct TensorPadding {
  int dim = -1;                 // -1: none
  std::vector<int64_t> pieces;  // the whole tensor's sizes along dim, in order
  int64_t multiple = 1;
};

struct ParamTensor {
  std::string name;            // HF state_dict name
  std::vector<int64_t> shape;  // this rank's shape, padding included: the HF shape where not
                               // tensor-parallel, but for the embedding's padding rows and
                               // the padded tensors (TensorPadding)
  int64_t offset = 0;          // in elements, into the flat buffer
  int64_t numel = 0;           // of this rank's tensor
  ParamKind kind = ParamKind::matrix;
  InitRule init = InitRule::normal;
  std::vector<int64_t> full_shape;  // HF shape
  TensorSplit split;
  TensorPadding padding;

  // The HF tensor's element count (padding not counted).
  int64_t full_numel() const {
    int64_t n = 1;
    for (int64_t d : full_shape) n *= d;
    return n;
  }
};

// Elements [local, local + length) of a rank's tensor are elements [full, full + length) of the
// whole HF tensor (row-major offsets within each tensor).
struct SliceRun {
  int64_t full = 0, local = 0, length = 0;
};
// Every run of rank tp's tensor t, in local order (which is also HF order), adjacent runs
// merged: a tensor held whole without padding is one run.
std::vector<SliceRun> slice_runs(const ParamTensor& t, TensorParallelRank tp);

// Calls fn(a_local, b_local, length) for every stretch of HF elements that both run lists hold
// (each in HF order, as slice_runs gives them): the element at a_local + i in a's tensor is the
// one at b_local + i in b's.
template <class Fn>
void for_each_overlap(const std::vector<SliceRun>& a, const std::vector<SliceRun>& b, Fn&& fn) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const int64_t begin = std::max(a[i].full, b[j].full);
    const int64_t a_end = a[i].full + a[i].length, b_end = b[j].full + b[j].length;
    if (begin < std::min(a_end, b_end)) {
      fn(a[i].local + begin - a[i].full, b[j].local + begin - b[j].full, std::min(a_end, b_end) - begin);
    }
    if (a_end <= b_end) ++i;
    if (b_end <= a_end) ++j;
  }
}

// Between whole-model tensor t's place in a tp.size 1 buffer (padding included) and the HF
// tensor's row-major elements, which is what files hold. Most tensors hold them in HF order at
// `buffer + t.offset` (the embedding's padding rows come after them); the padded ones
// (TensorPadding) go through a packed copy in `scratch`.
bool holds_hf_order(const ParamTensor& t);
const float* hf_elements(const ParamTensor& t, const float* buffer, std::vector<float>& scratch);
void store_hf_elements(const ParamTensor& t, const float* hf, float* buffer);
// Calls read_hf(float* hf) to fill the HF elements of t, straight into its place in `buffer`
// where it holds HF order.
template <class ReadHf>
void read_hf_elements(const ParamTensor& t, float* buffer, std::vector<float>& scratch, ReadHf&& read_hf) {
  if (holds_hf_order(t)) {
    read_hf(buffer + t.offset);
    return;
  }
  scratch.resize(size_t(t.full_numel()));
  read_hf(scratch.data());
  store_hf_elements(t, scratch.data(), buffer);
}

// Offset of a tensor the layer does not have (its branch is off, model.mixer); its view is null.
inline constexpr int64_t kAbsent = -1;

// Offsets of one decoder layer's tensors. P = int64_t (offsets) or T* (views into a buffer).
// Those that start out absent exist only with Mamba heads (conv_w .. C_norm, ssm_norm) or only
// with attention heads (attn_norm): LayerSpec::has_mamba / has_attention.
template <class P>
struct LayerParams {
  static constexpr P absent() {
    if constexpr (std::is_pointer_v<P>) return nullptr;
    else return kAbsent;
  }
  P input_norm;                // [H]            input_layernorm
  P in_proj;                   // [D_in, H]      rows: q | k | v | x | z (LayerSpec::in_proj_rows)
  P conv_w = absent();         // [E, 1, K]
  P conv_b = absent();         // [E]
  P x_proj = absent();         // [X, E]         rows: dt | B | C, each padded (XProjColumns)
  P dt_proj_w = absent();      // [E, Rp]        columns R..Rp zero (XProjColumns::dt_width)
  P dt_proj_b = absent();      // [E]
  P A_log = absent();          // [E, N]
  P D = absent();              // [E]
  P dt_norm = absent();        // [R]
  P B_norm = absent();         // [N]
  P C_norm = absent();         // [N]
  P attn_norm = absent();      // [E]            pre_avg_layernorm1 (β₁)
  P ssm_norm = absent();       // [E]            pre_avg_layernorm2 (β₂)
  P out_proj;                  // [H, E]
  P mlp_norm;                  // [H]            pre_moe_layernorm
  P gate;                      // [I, H]
  P up;                        // [I, H]
  P down;                      // [H, I]
};

template <class P>
struct ModelParams {
  P embed;       // [V, H]  (tied lm_head)
  P meta;        // [M, H]  memory tokens
  P final_norm;  // [H]
  std::vector<LayerParams<P>> layers;
};

// A run of the buffer [begin, end) whose gradients are complete at the same point of backward.
struct ParamRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

struct ParamLayout {
  TensorParallelRank tp;             // whose tensors these are
  std::vector<ParamTensor> tensors;  // in HF order
  ModelParams<int64_t> offsets;
  int64_t count = 0;    // number of parameters of this rank, padding rows not counted (with
                        // tp.size 1: what --info reports)
  int64_t storage = 0;  // buffer length: tensors start on 64-element boundaries (zero padding)
  // Buckets, in buffer order, tiling [0, storage): the embedding (bucket 0), each decoder
  // layer's matrices (bucket 1 + l), then every tensor the kernels read in fp32 rather than
  // through the GEMMs' bf16 copy (memory tokens, norms, conv, biases, SSM parameters: bucket
  // fp32_bucket, the last). Data parallelism reduces and shards the gradients bucket by bucket
  // (parallel/param_shard.h) and all-gathers the matrix buckets' weights in bf16.
  std::vector<ParamRange> buckets;
  size_t fp32_bucket = 0;
  // The matrix buckets are [0, matrices_end()).
  int64_t matrices_end() const { return buckets.empty() ? 0 : buckets[fp32_bucket].begin; }
};

// bucket_multiple: every bucket's length is a multiple of 64·bucket_multiple elements (zero
// padding at its end), so it splits into that many equal, 64-aligned parts: the data-parallel
// size. Tensor offsets, and so the buffer contents, depend on it; what is saved (by name) does not.
// tp: the tensor-parallel rank whose share of every tensor the layout holds (TensorSplit).
ParamLayout build_param_layout(const ModelConfig& c, const std::vector<LayerSpec>& layers,
                               int64_t bucket_multiple = 1, TensorParallelRank tp = {});

// Between a whole-model buffer (`full`, built with tp.size 1) and tensor-parallel rank
// part.tp's buffer: copies every tensor's runs; the padding between tensors is left alone.
void full_to_part(const ParamLayout& full, const float* from, const ParamLayout& part, float* to);
void part_to_full(const ParamLayout& part, const float* from, const ParamLayout& full, float* to);

// The vocabulary ids [begin, end) tensor-parallel rank tp holds of V, in its first end − begin
// rows (chunks of vocab_rows_per_rank(V, size) rows).
cpu::VocabRange vocab_range(int64_t V, TensorParallelRank tp);

// Typed pointers into a flat buffer (parameters, gradients or moments) with this layout; null
// for the tensors at or after `end` (a buffer of the matrices alone: ParamLayout::matrices_end).
template <class T>
ModelParams<T*> param_views(const ParamLayout& layout, T* base, int64_t end = INT64_MAX);

}  // namespace hymba
