// ZeRO-1 sharding of the flat parameter buffer among W data-parallel ranks.
//
// Every bucket of the layout (the embedding, each layer's matrices, the fp32-read tensors:
// ParamLayout::buckets)
// splits into W equal parts (build_param_layout(..., W) makes each bucket's length a multiple of
// 64·W), and rank r owns part r of every bucket. Gradients are reduce-scattered bucket by bucket
// as backward completes them, so rank r receives the summed gradient of exactly its parts; it
// keeps those, and its AdamW moments, compact: its parts one after another. Rank r updates the
// master weights of its parts, and the updated weights are all-gathered bucket by bucket (the
// matrices in the GEMMs' compute type: trainer/data_parallel.h).
//
// With W = 1 the one part of each bucket is the whole bucket, so the compact order is the
// buffer's order: compact offsets equal flat offsets and nothing needs copying.
#pragma once

#include <cstdint>
#include <vector>

#include "model/param_layout.h"

namespace hymba {

// One bucket's part owned by this rank: flat [flat, flat + length) of the layout's buffers is
// compact [compact, compact + length) of the shard's buffers.
struct ShardPart {
  int64_t flat = 0, compact = 0, length = 0;
};

struct ParamShard {
  int rank = 0, world = 1;
  std::vector<ShardPart> parts;  // one per bucket, in bucket order
  int64_t length = 0;            // Σ parts' lengths: the compact buffers' size (equal on every rank)
};

// Rank `rank`'s shard of `layout` among `world` ranks. An Error when a bucket does not split
// into `world` equal parts (a layout built for another data-parallel size).
ParamShard shard_params(const ParamLayout& layout, int rank, int world);

// A piece of one tensor inside the shard: what the optimizer updates (the zero padding between
// tensors is left out).
struct ShardSegment {
  int64_t flat = 0, compact = 0, length = 0;
  size_t tensor = 0;  // index into layout.tensors
};
std::vector<ShardSegment> shard_segments(const ParamLayout& layout, const ParamShard& shard);

// This rank's compact shard [shard.length] of a full-layout buffer `full` [layout.storage].
void full_to_shard(const ParamShard& shard, const float* full, float* compact);

// Between a full-layout buffer and the shards of every rank. all [world·shard.length]: rank q's
// compact buffer at q·shard.length (the order ProcessGroup::gather/scatter use).
void shards_to_full(const ParamLayout& layout, int world, const float* all, float* full);
void full_to_shards(const ParamLayout& layout, int world, const float* full, float* all);

}  // namespace hymba
