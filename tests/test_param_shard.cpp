// ZeRO-1 sharding of the parameter buffer (parallel/param_shard.h) and AdamW on shards: the
// shards of W ranks tile every bucket, the copies between full and sharded buffers round-trip,
// and W ranks updating their shards give exactly the single-process update.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/layer_plan.h"
#include "model/param_layout.h"
#include "optim/adamw.h"
#include "parallel/param_shard.h"

namespace hymba::test {
namespace {

ModelConfig tiny_model() {
  return load_config(std::string(HYMBA_SOURCE_DIR) + "/configs/tiny.yaml").model;
}

TEST(ParamShard, BucketsTileTheBufferSplitEvenlyAndHoldTheirKinds) {
  const ModelConfig c = tiny_model();
  for (int world : {1, 2, 3, 4}) {
    const ParamLayout layout = build_param_layout(c, plan_layers(c), world);
    ASSERT_EQ(layout.buckets.size(), size_t(c.num_hidden_layers + 2));
    int64_t at = 0;
    for (const ParamRange& b : layout.buckets) {
      EXPECT_EQ(b.begin, at);
      EXPECT_EQ(b.size() % (64 * world), 0) << "world " << world;
      at = b.end;
    }
    EXPECT_EQ(at, layout.storage);
    // The embedding is bucket 0, layer l's matrices bucket 1 + l, and every tensor the kernels
    // read in fp32 (norms, conv, biases, SSM parameters, memory tokens) the last bucket.
    ASSERT_EQ(layout.fp32_bucket, layout.buckets.size() - 1);
    EXPECT_EQ(layout.matrices_end(), layout.buckets.back().begin);
    const auto bucket_of = [&](int64_t offset) {
      for (size_t b = 0; b < layout.buckets.size(); ++b) {
        if (offset >= layout.buckets[b].begin && offset < layout.buckets[b].end) return b;
      }
      return layout.buckets.size();
    };
    // In it the tensors tensor parallelism splits come first, the replicated ones after them (so
    // the gradient norm finds a shard's replicated elements in one run).
    int64_t last_split = -1, first_replicated = layout.storage;
    for (const ParamTensor& t : layout.tensors) {
      if (t.kind == ParamKind::matrix || t.kind == ParamKind::embedding) continue;
      if (t.split.dim >= 0) last_split = std::max(last_split, t.offset);
      else first_replicated = std::min(first_replicated, t.offset);
    }
    EXPECT_LT(last_split, first_replicated);
    for (const ParamTensor& t : layout.tensors) {
      if (t.numel == 0) continue;
      const size_t b = bucket_of(t.offset);
      EXPECT_EQ(bucket_of(t.offset + t.numel - 1), b) << t.name << " crosses buckets";
      if (t.kind == ParamKind::embedding) {
        EXPECT_EQ(b, 0u) << t.name;
      } else if (t.kind != ParamKind::matrix) {
        EXPECT_EQ(b, layout.fp32_bucket) << t.name;
      }
    }
    for (size_t l = 0; l < layout.offsets.layers.size(); ++l) {
      const LayerParams<int64_t>& o = layout.offsets.layers[l];
      for (int64_t offset : {o.in_proj, o.out_proj, o.gate, o.up, o.down}) EXPECT_EQ(bucket_of(offset), 1 + l);
    }
    // Every element of every tensor is in exactly one rank's segments, once.
    std::vector<int> owners(size_t(layout.storage), 0);
    for (int r = 0; r < world; ++r) {
      const ParamShard s = shard_params(layout, r, world);
      EXPECT_EQ(s.length * world, layout.storage);
      for (const ShardSegment& seg : shard_segments(layout, s)) {
        for (int64_t i = 0; i < seg.length; ++i) ++owners[size_t(seg.flat + i)];
      }
    }
    for (const ParamTensor& t : layout.tensors) {
      for (int64_t i = 0; i < t.numel; ++i) ASSERT_EQ(owners[size_t(t.offset + i)], 1) << t.name << " world " << world;
    }
  }
}

TEST(ParamShard, FullAndShardedBuffersRoundTrip) {
  const ModelConfig c = tiny_model();
  const ParamLayout layout = build_param_layout(c, plan_layers(c), 3);
  std::vector<float> full(size_t(layout.storage)), all(full.size()), back(full.size(), -1.0f);
  for (size_t i = 0; i < full.size(); ++i) full[i] = float(i % 9973) + 0.5f;
  full_to_shards(layout, 3, full.data(), all.data());
  EXPECT_NE(all, full);  // the shards' order is not the buffer's
  shards_to_full(layout, 3, all.data(), back.data());
  EXPECT_EQ(back, full);
  EXPECT_THROW(shard_params(build_param_layout(c, plan_layers(c), 2), 0, 3), Error);
}

// W ranks, each with its AdamW over its shard and the full gradient sliced to its shard, end
// with the weights and moments of one AdamW over the whole buffer, bit for bit: the update is
// elementwise, and only the compact moments are laid out differently.
TEST(ParamShard, ShardedAdamWEqualsTheWholeUpdate) {
  const ModelConfig c = tiny_model();
  OptimConfig oc;
  oc.weight_decay = 0.1;
  const int world = 4;
  const ParamLayout layout = build_param_layout(c, plan_layers(c), world);
  std::vector<float> p(size_t(layout.storage)), g(p.size());
  for (const ParamTensor& t : layout.tensors) {
    for (int64_t i = 0; i < t.numel; ++i) {
      p[size_t(t.offset + i)] = float(normal01(1, 2, uint64_t(t.offset + i)));
      g[size_t(t.offset + i)] = float(normal01(1, 3, uint64_t(t.offset + i)));
    }
  }
  AdamW<float> whole(layout, oc);
  std::vector<float> p_whole = p, p_sharded = p;
  std::vector<ParamShard> shards;
  std::vector<AdamW<float>> parts;
  for (int r = 0; r < world; ++r) shards.push_back(shard_params(layout, r, world));
  for (int r = 0; r < world; ++r) parts.emplace_back(layout, oc, shards[size_t(r)]);
  std::vector<float> g_all(p.size());
  full_to_shards(layout, world, g.data(), g_all.data());
  for (int step = 0; step < 3; ++step) {
    whole.step(p_whole.data(), g.data(), 1e-2, 0.5);
    for (int r = 0; r < world; ++r) {
      parts[size_t(r)].step(p_sharded.data(), g_all.data() + r * shards[0].length, 1e-2, 0.5);
    }
  }
  EXPECT_EQ(p_sharded, p_whole);
  std::vector<float> m_all, m_full(p.size());
  for (AdamW<float>& a : parts) m_all.insert(m_all.end(), a.first_moment().begin(), a.first_moment().end());
  shards_to_full(layout, world, m_all.data(), m_full.data());
  EXPECT_EQ(m_full, whole.first_moment());
}

}  // namespace
}  // namespace hymba::test
