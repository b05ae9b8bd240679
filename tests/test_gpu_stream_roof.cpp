// stream_roof (the roof bench-rmsnorm prints under each line): every output vector is the sum of
// the input vectors at its index, nothing past the end is written, and a pattern it has no kernel
// for is an error that names the counts. The sums are skipped without a GPU; the argument check
// runs before any CUDA call, so it runs everywhere the CUDA library is built.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "gpu_test.h"

#ifdef HYMBA_HAVE_CUDA
#include <vector_types.h>

#include "core/error.h"
#include "core/rng.h"
#include "cuda/stream_roof.h"
#endif

namespace hymba::test {
namespace {

#ifdef HYMBA_HAVE_CUDA
// n random 16-byte vectors (every 32-bit word random), from `seed`.
std::vector<uint4> random_vectors(int64_t n, uint64_t seed) {
  std::vector<uint4> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto word = [&](int w) { return uint32_t(uniform01(seed, uint64_t(w), i) * 4294967296.0); };
    v[size_t(i)] = make_uint4(word(0), word(1), word(2), word(3));
  }
  return v;
}
#endif

TEST(GpuStreamRoof, WritesTheSumOfItsInputsAndNothingPastTheEnd) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  for (const auto& [reads, writes] : {std::pair{1, 1}, {2, 1}, {3, 2}}) {
    const int64_t n = 1027;  // not a whole block of 1024 vectors
    std::vector<std::vector<uint4>> in_host;
    std::vector<DeviceArray<uint4>> in, out;
    for (int r = 0; r < reads; ++r) {
      in_host.push_back(random_vectors(n, 10 + r));
      in.emplace_back(in_host.back());
    }
    const std::vector<uint4> sentinel = random_vectors(n + 1, 99);  // one vector past the end
    for (int w = 0; w < writes; ++w) out.emplace_back(sentinel);
    const void* in_ptrs[3] = {};
    void* out_ptrs[2] = {};
    for (int r = 0; r < reads; ++r) in_ptrs[r] = in[size_t(r)].data();
    for (int w = 0; w < writes; ++w) out_ptrs[w] = out[size_t(w)].data();
    cuda::stream_roof(out_ptrs, writes, in_ptrs, reads, n);
    for (int w = 0; w < writes; ++w) {
      const std::vector<uint4> got = out[size_t(w)].to_host();
      for (int64_t i = 0; i < n; ++i) {
        uint4 sum = make_uint4(0, 0, 0, 0);
        for (int r = 0; r < reads; ++r) {
          const uint4 v = in_host[size_t(r)][size_t(i)];
          sum = make_uint4(sum.x + v.x, sum.y + v.y, sum.z + v.z, sum.w + v.w);
        }
        const uint4 g = got[size_t(i)];
        ASSERT_TRUE(g.x == sum.x && g.y == sum.y && g.z == sum.z && g.w == sum.w)
            << reads << " reads, output " << w << ", vector " << i;
      }
      const uint4 past = got[size_t(n)], kept = sentinel[size_t(n)];
      EXPECT_TRUE(past.x == kept.x && past.y == kept.y && past.z == kept.z && past.w == kept.w)
          << reads << " reads: the vector past the end was written";
    }
  }
#endif
}

TEST(GpuStreamRoof, APatternWithoutAKernelIsAnError) {
#ifdef HYMBA_HAVE_CUDA
  const void* in[3] = {};
  void* out[2] = {};
  for (const auto& [reads, writes] : {std::pair{0, 1}, {4, 1}, {1, 0}, {1, 5}}) {
    try {
      cuda::stream_roof(out, writes, in, reads, 16);
      ADD_FAILURE() << reads << " reads and " << writes << " writes were accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("reads must be 1-3 and writes 1-2"), std::string::npos) << e.what();
    }
  }
#else
  GTEST_SKIP() << "built without CUDA";
#endif
}

}  // namespace
}  // namespace hymba::test
