// Text generation with the CPU model: greedy decoding or sampling with temperature, top-k and
// top-p (nucleus) filtering, reproducible from a seed.
//
// There is no KV cache: every new token runs the model's forward over its whole fixed row (the
// prompt and the tokens generated so far, padded to T) and reads the logits at the last real
// position; causality makes the padding irrelevant. n new tokens therefore cost n forwards of T
// positions, O(n·T) token-positions of work where a KV cache (and the SSM's recurrent state)
// would need O(n). That is fine for looking at what a small model writes, not for serving.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "model/hymba_model.h"

namespace hymba {

// Applied in this order, as Hugging Face's generate does: temperature, then top-k, then top-p on
// the distribution that top-k leaves.
struct SamplingOptions {
  double temperature = 1.0;  // softmax(logits / temperature); 0 = greedy (the argmax)
  int64_t top_k = 0;         // keep the k most likely ids; 0 = no limit
  double top_p = 1.0;        // keep the fewest most likely ids whose probability sum reaches p
                             // (at least one); 1 = no limit
};

// An Error naming the option when temperature < 0, top_k < 0 or top_p is outside (0, 1].
void check_sampling_options(const SamplingOptions& options);

struct TokenProb {
  int32_t id;
  double p;
};

// The distribution the next token is drawn from, given logits [V]: the kept ids, most likely
// first (ties: lower id first), probabilities renormalised to sum to 1. Greedy gives the argmax
// alone. Options are checked (check_sampling_options).
std::vector<TokenProb> sampling_distribution(std::span<const float> logits,
                                             const SamplingOptions& options);

// The id drawn by u in [0, 1): the first whose cumulative probability exceeds u (inverse CDF).
int32_t sample_token(const std::vector<TokenProb>& distribution, double u);

struct GenerateOptions {
  SamplingOptions sampling;
  int64_t max_new_tokens = 64;
  int32_t eot_id = -1;  // end of text: generation stops there (the id is not returned); −1: none
  uint64_t seed = 0;    // new token i draws uniform01(seed, hash("generate"), i)
};

enum class StopReason { max_new_tokens, row_full, end_of_text };
const char* stop_reason_name(StopReason reason);  // "max_new_tokens", "row_full", "end_of_text"

struct Generation {
  std::vector<int32_t> tokens;  // the new tokens, without the prompt
  StopReason stop = StopReason::max_new_tokens;
};

// Continues `prompt` (1 to T ids) with a model of batch 1. Stops after max_new_tokens, at the
// end-of-text id, or when the row is full: the logits at position T − 1 give a last token, so
// prompt + new tokens reach at most T + 1 ids.
// Model: HymbaModel<float> or (built with CUDA) a CUDA model of cuda_model.h.
template <class Model>
Generation generate(Model& model, std::span<const int32_t> prompt, const GenerateOptions& options);

}  // namespace hymba
