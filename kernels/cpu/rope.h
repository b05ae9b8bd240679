// Rotary position embedding, rotate-half (GPT-NeoX) convention (HYMBA_SPEC §2.2):
// for i < hd/2, with angle a = pos · inv_freq[i]:
//   y[i]      = x[i] cos a − x[i+hd/2] sin a
//   y[i+hd/2] = x[i+hd/2] cos a + x[i] sin a
// Position of sequence index s (meta tokens first) is s itself: meta tokens 0..M−1, text M+t.
#pragma once

#include <cstdint>
#include <vector>

namespace hymba::cpu {

// inv_freq[i] = base^(−2i/hd), i < hd/2, with the static NTK base of HYMBA_SPEC §2.2 when ntk is
// true: base' = theta · (2·max_pos/orig_max_pos − 1)^(hd/(hd−2)). Computed in double, then
// rounded to float as the official code keeps it in fp32.
std::vector<float> rope_inv_freq(int64_t head_dim, double theta, bool ntk, int64_t max_pos,
                                 int64_t orig_max_pos);

// x [B, S, heads, hd] at token stride ldx (elements between consecutive tokens);
// y [B, S, heads, hd] contiguous. inv_freq [hd/2].
template <class T>
void rope_forward(T* y, const T* x, int64_t ldx, const float* inv_freq, int64_t B, int64_t S,
                  int64_t heads, int64_t hd);

// The rotation's transpose: dx [B, S, heads, hd] at token stride lddx (=); dy contiguous.
template <class T>
void rope_backward(T* dx, int64_t lddx, const T* dy, const float* inv_freq, int64_t B, int64_t S,
                   int64_t heads, int64_t hd);

}  // namespace hymba::cpu
