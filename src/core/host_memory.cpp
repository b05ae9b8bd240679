#include "core/host_memory.h"

#include <cstdlib>
#include <utility>

#include "core/device.h"
#include "core/error.h"

#ifdef HYMBA_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace hymba {
namespace {

// Page alignment: what cudaHostAlloc gives, and never a worse start for vectorised loops.
constexpr size_t kAlignment = 4096;

}  // namespace

HostBuffer::HostBuffer(size_t bytes, bool pinned) : size_(bytes) {
  if (bytes == 0) return;
#ifdef HYMBA_HAVE_CUDA
  if (pinned && cuda_device_count() > 0) {
    const cudaError_t err = cudaHostAlloc(&data_, bytes, cudaHostAllocDefault);
    if (err != cudaSuccess) {
      data_ = nullptr;
      fail("cudaHostAlloc of ", bytes, " bytes failed: ", cudaGetErrorString(err));
    }
    pinned_ = true;
    return;
  }
#else
  (void)pinned;
#endif
  // aligned_alloc needs a size that is a multiple of the alignment.
  data_ = std::aligned_alloc(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  if (!data_) fail("cannot allocate ", bytes, " bytes of host memory");
}

HostBuffer::~HostBuffer() { release(); }

HostBuffer::HostBuffer(HostBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      pinned_(std::exchange(other.pinned_, false)) {}

HostBuffer& HostBuffer::operator=(HostBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    pinned_ = std::exchange(other.pinned_, false);
  }
  return *this;
}

void HostBuffer::release() {
  if (!data_) return;
  if (pinned_) {
#ifdef HYMBA_HAVE_CUDA
    cudaFreeHost(data_);  // a failed free cannot be reported from a destructor; it only leaks
#endif
  } else {
    std::free(data_);
  }
  data_ = nullptr;
}

}  // namespace hymba
