// The vocabulary rows one tensor-parallel rank holds (DESIGN.md §5: vocabulary-parallel embedding
// and lm_head): ids in [begin, end) are its table rows / logit columns 0 .. end − begin − 1. The
// default is every id (one rank).
#pragma once

#include <cstdint>
#include <limits>

namespace hymba::cpu {

struct VocabRange {
  int64_t begin = 0, end = std::numeric_limits<int64_t>::max();
  bool holds(int64_t id) const { return id >= begin && id < end; }
};

}  // namespace hymba::cpu
