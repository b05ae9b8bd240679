#include "eval/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#ifdef HYMBA_HAVE_CUDA
#include "model/cuda_model.h"
#endif

namespace hymba {

void check_sampling_options(const SamplingOptions& o) {
  if (!(o.temperature >= 0)) fail("sampling: temperature ", o.temperature, " must be >= 0");
  if (o.top_k < 0) fail("sampling: top_k ", o.top_k, " must be >= 0 (0 = no limit)");
  if (!(o.top_p > 0 && o.top_p <= 1)) fail("sampling: top_p ", o.top_p, " must be in (0, 1]");
}

std::vector<TokenProb> sampling_distribution(std::span<const float> logits,
                                             const SamplingOptions& o) {
  check_sampling_options(o);
  const auto V = static_cast<int64_t>(logits.size());
  HYMBA_ASSERT(V > 0);
  std::vector<int32_t> order(static_cast<size_t>(V));  // ids, most likely first
  std::iota(order.begin(), order.end(), 0);
  auto more_likely = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  const int64_t k = o.temperature == 0 ? 1 : (o.top_k > 0 ? std::min(o.top_k, V) : V);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), more_likely);

  std::vector<TokenProb> dist(static_cast<size_t>(k));
  const double top = logits[order[0]];
  double sum = 0;
  for (int64_t i = 0; i < k; ++i) {
    // The top id's weight is exactly 1 (also when greedy, where the formula would be 0 / 0).
    const double e = i == 0 ? 1.0 : std::exp((double(logits[order[i]]) - top) / o.temperature);
    dist[i] = {order[i], e};
    sum += e;
  }
  for (TokenProb& t : dist) t.p /= sum;

  if (o.top_p < 1) {
    size_t keep = 0;
    double mass = 0;
    while (keep < dist.size() && mass < o.top_p) mass += dist[keep++].p;
    dist.resize(keep);
    for (TokenProb& t : dist) t.p /= mass;
  }
  return dist;
}

int32_t sample_token(const std::vector<TokenProb>& distribution, double u) {
  HYMBA_ASSERT(!distribution.empty());
  double cumulative = 0;
  for (const TokenProb& t : distribution) {
    cumulative += t.p;
    if (u < cumulative) return t.id;
  }
  return distribution.back().id;  // u within rounding of 1
}

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::max_new_tokens: return "max_new_tokens";
    case StopReason::row_full: return "row_full";
    case StopReason::end_of_text: return "end_of_text";
  }
  return "?";
}

template <class Model>
Generation generate(Model& model, std::span<const int32_t> prompt, const GenerateOptions& options) {
  check_sampling_options(options.sampling);
  const int64_t T = model.seq_len(), V = model.config().vocab_size;
  if (model.batch() != 1) fail("generate: the model must have batch 1, not ", model.batch());
  const auto P = static_cast<int64_t>(prompt.size());
  if (P < 1 || P > T) {
    fail("generate: the prompt has ", P, " tokens; the model's row holds 1 to ", T);
  }
  const auto pad = static_cast<int32_t>(model.config().pad_token_id);
  std::vector<int32_t> row(static_cast<size_t>(T), pad);  // [T] the sequence so far, then pad
  std::copy(prompt.begin(), prompt.end(), row.begin());

  Generation g;
  const uint64_t stream = hash_name("generate");
  for (int64_t n = P;; ++n) {  // n: ids in the sequence so far
    if (int64_t(g.tokens.size()) == options.max_new_tokens) {
      g.stop = StopReason::max_new_tokens;
      break;
    }
    if (n > T) {
      g.stop = StopReason::row_full;
      break;
    }
    model.forward(row.data(), nullptr);
    const std::span<const float> logits(model.host_logits() + (n - 1) * V, static_cast<size_t>(V));
    const double u = uniform01(options.seed, stream, g.tokens.size());
    const int32_t next = sample_token(sampling_distribution(logits, options.sampling), u);
    if (next == options.eot_id) {
      g.stop = StopReason::end_of_text;
      break;
    }
    g.tokens.push_back(next);
    if (n < T) row[n] = next;
  }
  return g;
}

template Generation generate(HymbaModel<float>&, std::span<const int32_t>, const GenerateOptions&);
#ifdef HYMBA_HAVE_CUDA
template Generation generate(CudaHymbaModel&, std::span<const int32_t>, const GenerateOptions&);
template Generation generate(CudaBf16HymbaModel&, std::span<const int32_t>, const GenerateOptions&);
#endif

}  // namespace hymba
