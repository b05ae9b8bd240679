// Device memory owned like a std::vector: one cudaMalloc at construction, freed with the object.
// The GPU model plans its memory up front (DESIGN.md §3), so these are made once, before step 1.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "core/cuda_check.h"

namespace hymba::cuda {

template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(int64_t n) : n_(n) {
    if (n_ > 0) HYMBA_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), size_t(n_) * sizeof(T)));
  }
  explicit DeviceArray(const std::vector<T>& host) : DeviceArray(int64_t(host.size())) { upload(host.data()); }
  static DeviceArray zeros(int64_t n) {
    DeviceArray a(n);
    if (n > 0) HYMBA_CUDA_CHECK(cudaMemset(a.p_, 0, size_t(n) * sizeof(T)));
    return a;
  }
  ~DeviceArray() {
    if (p_) cudaFree(p_);  // no check: a destructor may run while an error unwinds
  }
  DeviceArray(DeviceArray&& o) noexcept : n_(std::exchange(o.n_, 0)), p_(std::exchange(o.p_, nullptr)) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    std::swap(n_, o.n_);
    std::swap(p_, o.p_);
    return *this;
  }

  T* data() const { return p_; }
  int64_t size() const { return n_; }

  // Synchronous copies of all n elements (the device is synchronised first, so queued kernels
  // have finished writing).
  void upload(const T* host) {
    HYMBA_CUDA_CHECK(cudaDeviceSynchronize());
    if (n_ > 0) HYMBA_CUDA_CHECK(cudaMemcpy(p_, host, size_t(n_) * sizeof(T), cudaMemcpyHostToDevice));
  }
  void download(T* host) const {
    HYMBA_CUDA_CHECK(cudaDeviceSynchronize());
    if (n_ > 0) HYMBA_CUDA_CHECK(cudaMemcpy(host, p_, size_t(n_) * sizeof(T), cudaMemcpyDeviceToHost));
  }
  std::vector<T> to_host() const {
    std::vector<T> h(static_cast<size_t>(n_));
    download(h.data());
    return h;
  }

 private:
  int64_t n_ = 0;
  T* p_ = nullptr;
};

}  // namespace hymba::cuda
