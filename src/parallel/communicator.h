// Bulk collectives over the model's buffers (gradients, weights, tensor-parallel activations) of
// the ranks of a ProcessGroup, with two backends behind one interface:
//   MPI  (make_mpi_communicator):  buffers in host memory (the CPU model); runs in CI.
//   NCCL (make_nccl_communicator): buffers in device memory of the current GPU.
// Collectives are issued in issue order. Overlapped (data parallelism): a buffer a collective
// reads or writes must not be touched until wait() has returned; on the GPU a collective starts
// after the work already issued on the compute stream, runs on a side stream (so it overlaps
// compute issued later), and wait() makes the compute stream wait for it too. In order (tensor
// parallelism): see Ordering. wait() gives up after the group's timeout and aborts the job
// (ProcessGroup::abort).
#pragma once

#include <cstdint>
#include <memory>

#ifdef HYMBA_HAVE_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>
#endif

#include "parallel/process_group.h"

namespace hymba {

// The element types collectives move: the fp32 training buffers, the CPU reference model's
// doubles, and bf16 activations (tensor parallelism on the GPU; NCCL only).
enum class Element { f32, f64, bf16 };
template <class T>
constexpr Element element_of();
template <>
constexpr Element element_of<float>() { return Element::f32; }
template <>
constexpr Element element_of<double>() { return Element::f64; }
#ifdef HYMBA_HAVE_CUDA
template <>
constexpr Element element_of<__nv_bfloat16>() { return Element::bf16; }
#endif

// How a communicator's collectives are ordered against the model's compute.
enum class Ordering {
  // Data parallelism: a collective runs beside the compute issued after it (on the GPU a side
  // stream; with MPI a non-blocking request) and is complete only after wait().
  overlapped,
  // Tensor parallelism: a collective is complete for all work issued after it (on the GPU it
  // runs on the compute stream; with MPI the call returns once it has completed), so its result
  // can be used right away. wait() then only bounds the time (a dead peer stalls the stream).
  in_order,
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // send [size·n]; rank r receives Σ over ranks q of send_q[r·n, (r+1)·n) into recv [n].
  // send and recv must not overlap.
  virtual void reduce_scatter_sum(const float* send, float* recv, int64_t n) = 0;
  // x [size·n]: every rank's part x[q·n, (q+1)·n) lands in every rank's x.
  template <class T>
  void all_gather_in_place(T* x, int64_t n) { all_gather_in_place(x, n, element_of<T>()); }
  // x [n] becomes Σ over ranks, in place; every rank gets the same bits.
  template <class T>
  void all_reduce_sum(T* x, int64_t n) { all_reduce_sum(x, n, element_of<T>()); }
  // root's x [n] to every rank.
  virtual void broadcast(float* x, int64_t n, int root) = 0;
  // Returns once every collective issued so far has completed.
  virtual void wait() = 0;

 protected:
  virtual void all_gather_in_place(void* x, int64_t n, Element type) = 0;
  virtual void all_reduce_sum(void* x, int64_t n, Element type) = 0;
};

std::unique_ptr<Communicator> make_mpi_communicator(const ProcessGroup& group,
                                                    Ordering ordering = Ordering::overlapped);
// MPI for host buffers, else NCCL on the current GPU with the legacy default stream as the
// compute stream (where the model's kernels run).
std::unique_ptr<Communicator> make_communicator(const ProcessGroup& group, bool host_buffers, Ordering ordering);
#ifdef HYMBA_HAVE_CUDA
// Device buffers on the current GPU (select it with cudaSetDevice first); compute: the stream the
// model's kernels run on (nullptr: the legacy default stream).
std::unique_ptr<Communicator> make_nccl_communicator(const ProcessGroup& group, cudaStream_t compute,
                                                     Ordering ordering = Ordering::overlapped);
#endif

}  // namespace hymba
