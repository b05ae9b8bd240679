#include "core/rng.h"

#include <cmath>
#include <numbers>

namespace hymba {

double normal01(uint64_t seed, uint64_t stream, uint64_t index) {
  // Two uniforms from disjoint halves of the index space of this stream.
  double u1 = uniform01(seed, stream, 2 * index);
  double u2 = uniform01(seed, stream, 2 * index + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace hymba
