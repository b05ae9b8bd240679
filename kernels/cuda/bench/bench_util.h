// What the kernel benchmark programs share: random device buffers (DeviceArray, freed with
// their scope), event-timed medians, and the H100 ceilings the figures are compared with.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include "core/cuda_check.h"
#include "core/device.h"
#include "core/rng.h"
#include "cuda/device_array.h"
#include "cuda/stream_hold.h"
#include "cuda/stream_roof.h"

namespace hymba::bench {

using bf16 = __nv_bfloat16;

inline constexpr double kCopyTBs = 3.0;  // measured device-to-device copy (bytes read + written)

// Whether there is a GPU to time; says so on stderr, naming the program, where there is none.
inline bool have_gpu(const char* program) {
  if (cuda_device_count() > 0) return true;
  std::fprintf(stderr, "%s: no GPU found\n", program);
  return false;
}

// n values uniform in [lo, hi), rounded to T, on the device.
template <class T>
cuda::DeviceArray<T> device_random(int64_t n, uint64_t seed, float lo = -1, float hi = 1) {
  std::vector<T> h(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float v = lo + (hi - lo) * float(uniform01(seed, 1, i));
    if constexpr (std::is_same_v<T, float>) {
      h[size_t(i)] = v;
    } else {
      h[size_t(i)] = __float2bfloat16_rn(v);
    }
  }
  return cuda::DeviceArray<T>(h);
}

// Median milliseconds of `reps` runs of f after 5 warm-up runs, timed with events. Each run is
// enqueued behind a StreamHold and released once queued, so the figure is the GPU's time for f's
// kernels back to back (the gaps between them included), as a training step runs them, and not
// the host's time to launch them into an idle GPU (3-8 us a call on the H100, which the programs
// counted before 2026-11-25: docs/PERF.md, "Benchmarks timed behind a stream hold").
template <class F>
float median_ms(F f, int reps = 50) {
  for (int i = 0; i < 5; ++i) f();
  HYMBA_CUDA_CHECK(cudaDeviceSynchronize());
  cuda::StreamHold hold;
  cudaEvent_t a, b;
  HYMBA_CUDA_CHECK(cudaEventCreate(&a));
  HYMBA_CUDA_CHECK(cudaEventCreate(&b));
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    hold.hold();
    HYMBA_CUDA_CHECK(cudaEventRecord(a));
    f();
    HYMBA_CUDA_CHECK(cudaEventRecord(b));
    hold.release();
    HYMBA_CUDA_CHECK(cudaEventSynchronize(b));
    if (hold.timed_out()) fail("median_ms: the timed work waited for the GPU, so it cannot be timed queued");
    float ms = 0;
    HYMBA_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  HYMBA_CUDA_CHECK(cudaEventDestroy(a));
  HYMBA_CUDA_CHECK(cudaEventDestroy(b));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Median milliseconds of a device-to-device copy (cudaMemcpyAsync) that moves `bytes`, half read
// and half written: the roof of a memory-bound kernel moving as many bytes, with its per-launch
// costs included.
inline float copy_ms(double bytes) {
  const int64_t n = int64_t(bytes / 2);
  cuda::DeviceArray<unsigned char> src(n), dst(n);
  return median_ms([&] { HYMBA_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), size_t(n), cudaMemcpyDeviceToDevice)); });
}

// A launch of a memory-bound kernel's pattern: how many tensors it reads and writes.
struct Traffic {
  int reads, writes;
};

// Median milliseconds of stream_roof launches, one per entry of `launches`, each over tensors of
// `tensor_bytes`: the roof of memory-bound kernels with those loads and stores and no arithmetic
// (HBM serves reads and writes mixed 2:1 at another rate than a copy's 1:1).
inline float roof_ms(std::initializer_list<Traffic> launches, double tensor_bytes) {
  const int64_t vectors = int64_t(tensor_bytes / 16);
  std::vector<cuda::DeviceArray<uint4>> tensors;
  for (int i = 0; i < 5; ++i) tensors.emplace_back(vectors);  // up to 3 read, 2 written
  const void* in[3] = {tensors[0].data(), tensors[1].data(), tensors[2].data()};
  void* out[2] = {tensors[3].data(), tensors[4].data()};
  return median_ms([&] {
    for (const Traffic& t : launches) cuda::stream_roof(out, t.writes, in, t.reads, vectors);
  });
}

}  // namespace hymba::bench
