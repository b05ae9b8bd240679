// Fused softmax + cross-entropy over the vocabulary, with the logits gradient in the same pass
// (HYMBA_SPEC §2.9). Rows whose target is kIgnoreIndex (−100, PyTorch's default) add no loss and
// get a zero gradient.
#pragma once

#include <cstdint>

namespace hymba::cpu {

inline constexpr int32_t kIgnoreIndex = -100;

// logits [rows, V]; targets [rows]. Returns Σ over counted rows of (logsumexp − logit[target]),
// in double. If dlogits is not null it receives (softmax − onehot(target)) · grad_scale
// ([rows, V], may alias logits): grad_scale = 1 / (number of counted targets in the whole step)
// gives the gradient of the mean loss. A target outside [0, V) is an error naming its row.
// A target outside [0, V) (other than kIgnoreIndex) is an Error naming its row. The CUDA path
// calls this on the host before it uploads the targets.
void check_targets(const int32_t* targets, int64_t rows, int64_t V);

template <class T>
double cross_entropy(T* dlogits, const T* logits, const int32_t* targets, int64_t rows,
                     int64_t V, double grad_scale);

}  // namespace hymba::cpu
