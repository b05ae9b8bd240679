// Host buffers that feed a GPU. Page-locked (pinned) memory lets copies to the device run at full
// bandwidth and asynchronously; it is only available with the CUDA backend built and a device
// present, so elsewhere (CI, laptops) the same type hands out ordinary page-aligned memory.
#pragma once

#include <cstddef>

namespace hymba {

class HostBuffer {
 public:
  HostBuffer() = default;
  // `bytes` of uninitialised memory; page-locked when `pinned` is asked for and a CUDA device is
  // there. A failed allocation is an Error giving the size.
  HostBuffer(size_t bytes, bool pinned);
  ~HostBuffer();
  HostBuffer(HostBuffer&& other) noexcept;
  HostBuffer& operator=(HostBuffer&& other) noexcept;
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  template <class T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  void* data() const { return data_; }
  size_t size() const { return size_; }
  bool pinned() const { return pinned_; }  // page-locked in fact, not just asked for

 private:
  void release();

  void* data_ = nullptr;
  size_t size_ = 0;
  bool pinned_ = false;
};

}  // namespace hymba
