// The host-side checks a memory-bound kernel makes before taking its vector path: whether every
// buffer it reads or writes can move in whole, aligned packs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace hymba::cuda {

// Whether p is a multiple of `bytes` (a null pointer is).
inline bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Whether rows of `dim` elements of T can move in packs of W elements: dim and every row stride
// are whole packs, and every base pointer is aligned to a pack (W · sizeof(T) bytes).
template <class T>
bool packs_fit(int W, int64_t dim, std::initializer_list<int64_t> strides,
               std::initializer_list<const void*> pointers) {
  if (dim % W != 0) return false;
  for (const int64_t ld : strides)
    if (ld % W != 0) return false;
  for (const void* p : pointers)
    if (!aligned(p, size_t(W) * sizeof(T))) return false;
  return true;
}

}  // namespace hymba::cuda
