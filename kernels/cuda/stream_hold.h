// A stream held behind a kernel that waits for the host. Benchmarks time work by enqueueing it
// behind a hold and releasing the hold once all of it is queued: the events around the work then
// measure the GPU's time for it, as it runs in training (launches queued ahead), not the host's
// time to launch it into an idle GPU. nvbench times kernels this way.
#pragma once

#include <cuda_runtime_api.h>

namespace hymba::cuda {

class StreamHold {
 public:
  StreamHold();   // allocates the host-mapped flags
  ~StreamHold();  // releases a hold still held, waits for the device, frees the flags
  StreamHold(const StreamHold&) = delete;
  StreamHold& operator=(const StreamHold&) = delete;

  // Enqueues the waiting kernel on `stream`. It waits until release(), or at most timeout_ms,
  // after which it lets the stream go and timed_out() says so. The previous hold must have been
  // passed (the stream synchronised since).
  void hold(cudaStream_t stream = nullptr, double timeout_ms = 2000);
  void release();
  // Whether the last hold ended by itself: the work enqueued behind it made the host wait for the
  // GPU (a synchronising call), so it was timed from an idle GPU after all. Valid once the stream
  // has passed the hold.
  bool timed_out() const;

 private:
  volatile int* flags_ = nullptr;         // host-mapped: [0] released by the host, [1] timed out
  volatile int* device_flags_ = nullptr;  // the same memory as the device addresses it
};

}  // namespace hymba::cuda
