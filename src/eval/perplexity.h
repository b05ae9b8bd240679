// Validation loss and perplexity of the CPU model over prepared shards: the first N batches of the
// rows in order (no shuffling), so every evaluation of a run sees the same tokens and the numbers
// of different checkpoints compare directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/hymba_model.h"

namespace hymba {

struct PerplexityResult {
  int64_t batches = 0;  // batches evaluated
  int64_t tokens = 0;   // targets scored: batches · B · T
  double loss = 0;      // mean cross-entropy per counted target (nats)
  double perplexity() const;  // exp(loss)
};

// Mean loss of `model` over the first `batches` batches of model.batch() rows of model.seq_len()
// tokens from `shards` (batches ≤ 0, or more than the shards hold: every full batch). Shards of a
// vocabulary larger than the model's, or made with another tokenizer than `tokenizer` (an
// identity; empty = not checked), are refused by the loader with an error naming the file.
// Model: HymbaModel<float> or (built with CUDA) CudaHymbaModel, CudaBf16HymbaModel.
// Data-parallel rank `rank` of `world` scores its share of each batch of world·model.batch()
// rows (the loader's rank split), so the ranks' results added together (loss · tokens, tokens)
// are the single-process result with batches of world·model.batch() rows.
template <class Model>
PerplexityResult evaluate_perplexity(Model& model,
                                     const std::vector<std::string>& shards, int64_t batches,
                                     const std::string& tokenizer = "", int rank = 0, int world = 1);

}  // namespace hymba
