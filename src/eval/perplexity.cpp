#include "eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "data/loader.h"
#ifdef HYMBA_HAVE_CUDA
#include "model/cuda_model.h"
#endif

namespace hymba {

double PerplexityResult::perplexity() const { return std::exp(loss); }

template <class Model>
PerplexityResult evaluate_perplexity(Model& model, const std::vector<std::string>& shards,
                                     int64_t batches, const std::string& tokenizer, int rank, int world) {
  LoaderOptions o;
  o.rank = rank;
  o.world = world;
  o.shards = shards;
  o.seq_len = model.seq_len();
  o.batch_size = model.batch();
  o.shuffle = false;
  o.prefetch = 2;  // the forward dominates; deeper prefetch would only read rows never used
  o.max_vocab = model.config().vocab_size;
  o.tokenizer = tokenizer;
  DataLoader loader(o);
  const int64_t available = loader.rows_per_epoch() / (model.batch() * world);
  PerplexityResult r;
  r.batches = batches > 0 ? std::min(batches, available) : available;
  r.tokens = r.batches * model.batch() * model.seq_len();  // shard rows have no ignored targets
  double sum = 0;
  for (int64_t i = 0; i < r.batches; ++i) {
    const Batch& b = loader.next();
    sum += model.forward(b.ids, b.targets);
  }
  r.loss = sum / double(r.tokens);
  return r;
}

template PerplexityResult evaluate_perplexity(HymbaModel<float>&, const std::vector<std::string>&,
                                              int64_t, const std::string&, int, int);
#ifdef HYMBA_HAVE_CUDA
template PerplexityResult evaluate_perplexity(CudaHymbaModel&, const std::vector<std::string>&,
                                              int64_t, const std::string&, int, int);
template PerplexityResult evaluate_perplexity(CudaBf16HymbaModel&, const std::vector<std::string>&,
                                              int64_t, const std::string&, int, int);
#endif

}  // namespace hymba
