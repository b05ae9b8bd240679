#include "cpu/embedding.h"

#include <algorithm>

#include "core/error.h"
#include "cpu/parallel.h"

namespace hymba::cpu {

void check_token_ids(const int32_t* ids, int64_t B, int64_t Tlen, int64_t V) {
  for (int64_t i = 0; i < B * Tlen; ++i) {
    if (ids[i] < 0 || ids[i] >= V) {
      fail("token id ", ids[i], " at offset ", i, " (row ", i / Tlen, ", position ", i % Tlen,
           ") is outside the vocabulary [0, ", V, ")");
    }
  }
}

template <class T>
void embedding_forward(T* x, const int32_t* ids, const T* table, const T* meta, int64_t B,
                       int64_t Tlen, int64_t M, int64_t H, int64_t V, VocabRange vocab) {
  check_token_ids(ids, B, Tlen, V);
  const int64_t S = M + Tlen;
#pragma omp parallel for schedule(static) if (B * S * H >= kMinParallelWork)
  for (int64_t r = 0; r < B * S; ++r) {
    const int64_t b = r / S, s = r % S;
    const int64_t id = s < M ? 0 : ids[b * Tlen + s - M];
    const T* src = s < M ? (meta ? meta + s * H : nullptr)
                         : (vocab.holds(id) ? table + (id - vocab.begin) * H : nullptr);
    if (src) std::copy(src, src + H, x + r * H);
    else std::fill(x + r * H, x + (r + 1) * H, T(0));
  }
}

template <class T>
void embedding_backward(T* dtable, T* dmeta, const T* dx, const int32_t* ids, int64_t B,
                        int64_t Tlen, int64_t M, int64_t H, int64_t pad_id, VocabRange vocab) {
  const int64_t S = M + Tlen;
  // Serial over rows: repeated ids write the same table row, and the fixed order keeps the
  // result reproducible. Parallel over the H columns instead.
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t s = 0; s < S; ++s) {
      const T* g = dx + (b * S + s) * H;  // [H]
      T* dst;
      if (s < M) {
        dst = dmeta + s * H;
      } else {
        const int32_t id = ids[b * Tlen + s - M];
        if (id == pad_id || !vocab.holds(id)) continue;
        dst = dtable + (id - vocab.begin) * H;
      }
#pragma omp parallel for schedule(static) if (H >= kMinParallelWork)
      for (int64_t h = 0; h < H; ++h) dst[h] += g[h];
    }
  }
}

template void embedding_forward<float>(float*, const int32_t*, const float*, const float*,
                                       int64_t, int64_t, int64_t, int64_t, int64_t, VocabRange);
template void embedding_forward<double>(double*, const int32_t*, const double*, const double*,
                                        int64_t, int64_t, int64_t, int64_t, int64_t, VocabRange);
template void embedding_backward<float>(float*, float*, const float*, const int32_t*, int64_t,
                                        int64_t, int64_t, int64_t, int64_t, VocabRange);
template void embedding_backward<double>(double*, double*, const double*, const int32_t*,
                                         int64_t, int64_t, int64_t, int64_t, int64_t, VocabRange);

}  // namespace hymba::cpu
