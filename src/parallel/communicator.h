// Bulk collectives over the training buffers (gradients, weights) of the ranks of a
// ProcessGroup, with two backends behind one interface:
//   MPI  (make_mpi_communicator):  buffers in host memory (the CPU model); runs in CI.
//   NCCL (make_nccl_communicator): buffers in device memory of the current GPU.
// Collectives are issued asynchronously, in issue order, and complete by wait(). A buffer a
// collective reads or writes must not be touched until wait() has returned. On the GPU a
// collective starts after the work already issued on the compute stream, runs on a side stream
// (so it overlaps compute issued later), and wait() makes the compute stream wait for it too.
// wait() gives up after the group's timeout and aborts the job (ProcessGroup::abort).
#pragma once

#include <cstdint>
#include <memory>

#ifdef HYMBA_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

#include "parallel/process_group.h"

namespace hymba {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // send [size·n]; rank r receives Σ over ranks q of send_q[r·n, (r+1)·n) into recv [n].
  // send and recv must not overlap.
  virtual void reduce_scatter_sum(const float* send, float* recv, int64_t n) = 0;
  // x [size·n]: every rank's part x[q·n, (q+1)·n) lands in every rank's x.
  virtual void all_gather_in_place(float* x, int64_t n) = 0;
  // x [n] becomes Σ over ranks, in place.
  virtual void all_reduce_sum(float* x, int64_t n) = 0;
  // root's x [n] to every rank.
  virtual void broadcast(float* x, int64_t n, int root) = 0;
  // Returns once every collective issued so far has completed.
  virtual void wait() = 0;
};

std::unique_ptr<Communicator> make_mpi_communicator(const ProcessGroup& group);
#ifdef HYMBA_HAVE_CUDA
// Device buffers on the current GPU (select it with cudaSetDevice first); compute: the stream the
// model's kernels run on (nullptr: the legacy default stream).
std::unique_ptr<Communicator> make_nccl_communicator(const ProcessGroup& group, cudaStream_t compute);
#endif

}  // namespace hymba
