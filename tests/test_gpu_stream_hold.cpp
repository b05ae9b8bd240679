// StreamHold (how the benchmarks time queued work): work enqueued behind a hold does not run before
// release(), and a hold the host never releases lets the stream go after its timeout and says so.
// Skipped without a GPU.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "gpu_test.h"

#ifdef HYMBA_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "cuda/stream_hold.h"
#endif

namespace hymba::test {
namespace {

TEST(GpuStreamHold, WorkBehindTheHoldWaitsForRelease) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  DeviceArray<int> value(std::vector<int>{0});
  cuda::StreamHold hold;
  hold.hold();
  HYMBA_CUDA_CHECK(cudaMemsetAsync(value.data(), 1, sizeof(int)));  // every byte 1
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(cudaStreamQuery(nullptr), cudaErrorNotReady);  // the memset still waits
  hold.release();
  HYMBA_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_FALSE(hold.timed_out());
  EXPECT_EQ(value.to_host()[0], 0x01010101);
#endif
}

TEST(GpuStreamHold, AnUnreleasedHoldTimesOut) {
  HYMBA_REQUIRE_GPU();
#ifdef HYMBA_HAVE_CUDA
  cuda::StreamHold hold;
  hold.hold(nullptr, 20);
  HYMBA_CUDA_CHECK(cudaDeviceSynchronize());  // returns once the hold gives up
  EXPECT_TRUE(hold.timed_out());
  hold.hold();  // a hold after a timed-out one starts clean
  hold.release();
  HYMBA_CUDA_CHECK(cudaDeviceSynchronize());
  EXPECT_FALSE(hold.timed_out());
#endif
}

}  // namespace
}  // namespace hymba::test
