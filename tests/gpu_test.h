// Scaffolding for `gpu`-labelled tests: they skip (GTEST_SKIP) where the CUDA backend is not built
// or no GPU is present, and hold device memory in RAII buffers filled from host vectors.
#pragma once

#include <gtest/gtest.h>

#include <vector>

#include "core/device.h"

#ifdef HYMBA_HAVE_CUDA
#include "core/cuda_check.h"
#endif

#define HYMBA_REQUIRE_GPU()                                            \
  do {                                                                 \
    if (::hymba::cuda_device_count() == 0) GTEST_SKIP() << "no GPU";   \
  } while (0)

#ifdef HYMBA_HAVE_CUDA
namespace hymba::test {

// n floats on the device, copied from / to host vectors.
class DeviceFloats {
 public:
  explicit DeviceFloats(const std::vector<float>& host) : n_(host.size()) {
    HYMBA_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), n_ * sizeof(float)));
    HYMBA_CUDA_CHECK(cudaMemcpy(p_, host.data(), n_ * sizeof(float), cudaMemcpyHostToDevice));
  }
  ~DeviceFloats() { cudaFree(p_); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;

  float* get() const { return p_; }
  std::vector<float> to_host() const {
    std::vector<float> h(n_);
    HYMBA_CUDA_CHECK(cudaDeviceSynchronize());
    HYMBA_CUDA_CHECK(cudaMemcpy(h.data(), p_, n_ * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
  }

 private:
  size_t n_;
  float* p_ = nullptr;
};

}  // namespace hymba::test
#endif
