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
  // The tensors in buffer order (layout.tensors is in HF order): parts and tensors are then
  // walked together, as in a merge.
  std::vector<size_t> by_offset(layout.tensors.size());
  for (size_t t = 0; t < by_offset.size(); ++t) by_offset[t] = t;
  std::sort(by_offset.begin(), by_offset.end(),
            [&](size_t a, size_t b) { return layout.tensors[a].offset < layout.tensors[b].offset; });
  std::vector<ShardSegment> out;
  size_t t = 0;
  for (const ShardPart& p : shard.parts) {
    const int64_t end = p.flat + p.length;
    const auto tensor_at = [&](size_t i) -> const ParamTensor& { return layout.tensors[by_offset[i]]; };
    while (t < by_offset.size() && tensor_at(t).offset + tensor_at(t).numel <= p.flat) ++t;
    for (size_t u = t; u < by_offset.size() && tensor_at(u).offset < end; ++u) {
      const ParamTensor& tensor = tensor_at(u);
      const int64_t begin = std::max(tensor.offset, p.flat);
      const int64_t stop = std::min(tensor.offset + tensor.numel, end);
      if (begin < stop) out.push_back({begin, p.compact + (begin - p.flat), stop - begin, by_offset[u]});
    }
  }
  return out;
}

// This rank's compact shard [shard.length] of a full-layout buffer.
void full_to_shard(const ParamShard& shard, const float* full, float* compact) {
  for (const ShardPart& p : shard.parts) {
    std::memcpy(compact + p.compact, full + p.flat, size_t(p.length) * sizeof(float));
  }
}

void shards_to_full(const ParamLayout& layout, int world, const float* all, float* full) {
  for (int q = 0; q < world; ++q) {
    const ParamShard s = shard_params(layout, q, world);
    for (const ShardPart& p : s.parts) {
      std::memcpy(full + p.flat, all + q * s.length + p.compact, size_t(p.length) * sizeof(float));
    }
  }
}

void full_to_shards(const ParamLayout& layout, int world, const float* full, float* all) {
  for (int q = 0; q < world; ++q) {
    const ParamShard s = shard_params(layout, q, world);
    full_to_shard(s, full, all + q * s.length);
  }
}

}  // namespace hymba
