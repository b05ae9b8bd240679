#include "parallel/param_shard.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace hymba {

ParamShard shard_params(const ParamLayout& layout, int rank, int world) {
  HYMBA_ASSERT(world >= 1 && rank >= 0 && rank < world);
  ParamShard s;
  s.rank = rank;
  s.world = world;
  for (size_t b = 0; b < layout.buckets.size(); ++b) {
    const ParamRange& bucket = layout.buckets[b];
    if (bucket.size() % world != 0) {
      fail("parameter bucket ", b, " (", bucket.size(), " elements) does not split into ", world,
           " equal parts: the layout was built for another data-parallel size");
    }
    const int64_t part = bucket.size() / world;
    s.parts.push_back({bucket.begin + rank * part, s.length, part});
    s.length += part;
  }
  // Buckets must tile the buffer: an element outside every bucket would never be updated.
  HYMBA_ASSERT(s.length * world == layout.storage);
  return s;
}

std::vector<ShardSegment> shard_segments(const ParamLayout& layout, const ParamShard& shard) {
  std::vector<ShardSegment> out;
  size_t t = 0;  // tensors and parts are both in buffer order: one merge-like walk
  for (const ShardPart& p : shard.parts) {
    const int64_t end = p.flat + p.length;
    while (t < layout.tensors.size() && layout.tensors[t].offset + layout.tensors[t].numel <= p.flat) ++t;
    for (size_t u = t; u < layout.tensors.size() && layout.tensors[u].offset < end; ++u) {
      const ParamTensor& tensor = layout.tensors[u];
      const int64_t begin = std::max(tensor.offset, p.flat);
      const int64_t stop = std::min(tensor.offset + tensor.numel, end);
      if (begin < stop) out.push_back({begin, p.compact + (begin - p.flat), stop - begin, u});
    }
  }
  return out;
}

namespace {

// Calls f(rank q's part of bucket b as a ShardPart) for every rank and bucket; compact offsets
// index `all` (rank q's buffer at q·length).
template <class F>
void for_each_part_of_every_rank(const ParamLayout& layout, int world, F&& f) {
  for (int q = 0; q < world; ++q) {
    const ParamShard s = shard_params(layout, q, world);
    for (ShardPart p : s.parts) {
      p.compact += int64_t(q) * s.length;
      f(p);
    }
  }
}

}  // namespace

void shards_to_full(const ParamLayout& layout, int world, const float* all, float* full) {
  for_each_part_of_every_rank(layout, world, [&](const ShardPart& p) {
    std::memcpy(full + p.flat, all + p.compact, size_t(p.length) * sizeof(float));
  });
}

void full_to_shards(const ParamLayout& layout, int world, const float* full, float* all) {
  for_each_part_of_every_rank(layout, world, [&](const ShardPart& p) {
    std::memcpy(all + p.compact, full + p.flat, size_t(p.length) * sizeof(float));
  });
}

}  // namespace hymba
