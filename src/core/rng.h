// Counter-based random numbers: every value is a pure function of (seed, stream, index).
// Why counter-based: a tensor's initial values do not depend on thread count, on the order in
// which tensors are initialised, or on how a tensor is sharded across ranks (a tensor-parallel
// shard draws exactly the values of its slice of the unsharded tensor).
#pragma once

#include <cstdint>
#include <string_view>

namespace hymba {

// SplitMix64 finaliser: a bijective 64-bit mix with good avalanche.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// FNV-1a: turns a name (e.g. a parameter's HF name) into a stream id.
inline uint64_t hash_name(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// Uniform in (0, 1), never exactly 0 or 1 (safe for log).
inline double uniform01(uint64_t seed, uint64_t stream, uint64_t index) {
  uint64_t r = mix64(mix64(seed ^ mix64(stream)) + index);
  return (static_cast<double>(r >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

// Standard normal by Box-Muller on two independent uniforms of the same index.
double normal01(uint64_t seed, uint64_t stream, uint64_t index);

// A small sequential generator for places that draw values one after another (data sampling,
// tests). Its whole state is one counter, so it checkpoints as a single integer.
class CounterRng {
 public:
  CounterRng(uint64_t seed, uint64_t stream) : seed_(seed), stream_(stream) {}
  double uniform() { return uniform01(seed_, stream_, counter_++); }
  double normal() { return normal01(seed_, stream_, counter_++); }
  // Uniform integer in [0, n).
  uint64_t below(uint64_t n) { return static_cast<uint64_t>(uniform() * static_cast<double>(n)) % n; }
  uint64_t counter() const { return counter_; }
  void set_counter(uint64_t c) { counter_ = c; }

 private:
  uint64_t seed_, stream_, counter_ = 0;
};

}  // namespace hymba
