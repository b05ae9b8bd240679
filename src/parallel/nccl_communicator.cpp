// The NCCL backend of Communicator: device buffers of the current GPU. Overlapped: each collective
// is ordered after the work already issued on the compute stream (an event), runs on a side
// stream so that compute issued later overlaps it, and wait() orders the compute stream after all
// of them. In order: collectives run on the compute stream itself. Either way wait() polls their
// completion from the host with the group's deadline (parallel/mpi_check.h).
#ifdef HYMBA_HAVE_CUDA

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <atomic>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <thread>

#include "core/cuda_check.h"
#include "core/error.h"
#include "parallel/communicator.h"
#include "parallel/mpi_check.h"

namespace hymba {
namespace {

// A destructor cannot throw: failures while tearing down are reported and otherwise ignored.
void warn_cuda(cudaError_t status, const char* call, int rank) {
  if (status != cudaSuccess) {
    std::fprintf(stderr, "warning: rank %d: %s: %s\n", rank, call, cudaGetErrorString(status));
  }
}
void warn_nccl(ncclResult_t status, const char* call, int rank) {
  if (status != ncclSuccess) {
    std::fprintf(stderr, "warning: rank %d: %s: %s\n", rank, call, ncclGetErrorString(status));
  }
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const ProcessGroup& group, cudaStream_t compute, Ordering ordering)
      : group_(group), compute_(compute), ordering_(ordering) {
    try {
      // The side stream must not synchronise with the legacy default stream, which is often the
      // compute stream: a collective would then wait for compute issued after it (no overlap).
      HYMBA_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
      HYMBA_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
      HYMBA_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
      // A group of one runs NCCL too (mpirun -np 1): the same calls as on many GPUs.
      ncclUniqueId id{};
      if (group.rank() == 0) HYMBA_NCCL_CHECK(ncclGetUniqueId(&id));
      group.broadcast(&id, sizeof id, 0);  // under the group's deadline: a missing rank aborts here
      init_under_deadline(id);
    } catch (...) {
      release(false);  // no destructor runs for a constructor that throws
      throw;
    }
  }

  ~NcclCommunicator() override {
    // Unwinding from an error, the other ranks may never join the pending collectives: the
    // communicator is aborted instead of waited for (destroying it would wait too).
    bool clean = std::uncaught_exceptions() == 0;
    if (clean) {
      try {
        wait();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "warning: rank %d: NCCL communicator: %s\n", group_.rank(), e.what());
        clean = false;
      }
    }
    release(clean);
  }

  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return group_.rank(); }
  int size() const override { return group_.size(); }

  void reduce_scatter_sum(const float* send, float* recv, int64_t n) override {
    cudaStream_t stream = begin();
    HYMBA_NCCL_CHECK(ncclReduceScatter(send, recv, size_t(n), ncclFloat, ncclSum, comm_, stream));
  }

  void all_gather_in_place(void* x, int64_t n, Element type) override {
    cudaStream_t stream = begin();
    // In place for NCCL: this rank's part, at rank·n, is the send buffer.
    const void* part = static_cast<char*>(x) + int64_t(rank()) * n * element_size(type);
    HYMBA_NCCL_CHECK(ncclAllGather(part, x, size_t(n), datatype(type), comm_, stream));
  }

  // Every rank gets the same bits: NCCL's all-reduce finishes by broadcasting each reduced chunk.
  void all_reduce_sum(void* x, int64_t n, Element type) override {
    cudaStream_t stream = begin();
    HYMBA_NCCL_CHECK(ncclAllReduce(x, x, size_t(n), datatype(type), ncclSum, comm_, stream));
  }

  void broadcast(float* x, int64_t n, int root) override {
    if (root < 0 || root >= size()) {
      fail("Communicator::broadcast: root ", root, " is not a rank of a group of ", size());
    }
    cudaStream_t stream = begin();
    HYMBA_NCCL_CHECK(ncclBroadcast(x, x, size_t(n), ncclFloat, root, comm_, stream));
  }

  void wait() override {
    if (!issued_) return;
    HYMBA_CUDA_CHECK(cudaEventRecord(done_, ordering_ == Ordering::in_order ? compute_ : side_));
    // The compute stream's later work (the optimizer reading the reduced gradients) runs after
    // the collectives, without the host having to wait for that.
    if (ordering_ == Ordering::overlapped) HYMBA_CUDA_CHECK(cudaStreamWaitEvent(compute_, done_, 0));
    issued_ = false;
    // The host waits as well: the contract lets the caller touch the buffers once wait() returns,
    // and a collective whose peer has died never completes, which only a deadline can catch.
    detail::poll_until_done(
        group_, "Communicator::wait (NCCL)",
        [&] {
          const cudaError_t status = cudaEventQuery(done_);
          if (status == cudaSuccess) return true;
          if (status != cudaErrorNotReady) HYMBA_CUDA_CHECK(status);
          check_async_error();
          return false;
        },
        [&] { abort_comm(); });
  }

 private:
  // The stream of the next collective, ordered after the work issued so far on the compute stream.
  cudaStream_t begin() {
    issued_ = true;
    if (ordering_ == Ordering::in_order) return compute_;
    HYMBA_CUDA_CHECK(cudaEventRecord(ready_, compute_));
    HYMBA_CUDA_CHECK(cudaStreamWaitEvent(side_, ready_, 0));
    return side_;
  }

  static ncclDataType_t datatype(Element type) {
    switch (type) {
      case Element::f32: return ncclFloat;
      case Element::f64: return ncclDouble;
      case Element::bf16: return ncclBfloat16;
    }
    return ncclFloat;
  }
  static int64_t element_size(Element type) {
    return type == Element::f64 ? 8 : type == Element::f32 ? 4 : 2;
  }

  // A failed peer or network shows up as the communicator's asynchronous error while its
  // kernels spin forever: abort the communicator (which stops them) and the job.
  void check_async_error() {
    ncclResult_t async = ncclSuccess;
    HYMBA_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
    if (async == ncclSuccess) return;
    std::string message =
        detail::concat("Communicator::wait (NCCL): asynchronous error: ", ncclGetErrorString(async));
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
    if (const char* last = ncclGetLastError(comm_); last && *last) message += detail::concat(" (", last, ")");
#endif
    abort_comm();
    group_.abort(message);
  }

  // Frees what the constructor made; clean: the collectives have completed.
  void release(bool clean) {
    const int rank = group_.rank();
    if (comm_ && clean) warn_nccl(ncclCommDestroy(comm_), "ncclCommDestroy", rank);
    if (comm_ && !clean) warn_nccl(ncclCommAbort(comm_), "ncclCommAbort", rank);
    comm_ = nullptr;
    if (done_) warn_cuda(cudaEventDestroy(done_), "cudaEventDestroy", rank);
    if (ready_) warn_cuda(cudaEventDestroy(ready_), "cudaEventDestroy", rank);
    if (side_) warn_cuda(cudaStreamDestroy(side_), "cudaStreamDestroy", rank);
  }

  // ncclCommInitRank blocks until every rank has joined, so a rank that dies after the id
  // broadcast would hold the others in it forever. It runs on a thread of its own while this one
  // polls under the group's deadline; past it the job is aborted (MPI_Abort ends the process, the
  // thread with it). (A non-blocking communicator would instead make every later NCCL call
  // return ncclInProgress.)
  void init_under_deadline(const ncclUniqueId& id) {
    int device = 0;
    HYMBA_CUDA_CHECK(cudaGetDevice(&device));
    std::atomic<bool> finished{false};
    ncclResult_t status = ncclSuccess;
    cudaError_t device_status = cudaSuccess;
    std::thread init([&] {
      device_status = cudaSetDevice(device);  // the device is per thread
      if (device_status == cudaSuccess) status = ncclCommInitRank(&comm_, group_.size(), id, group_.rank());
      finished = true;
    });
    detail::poll_until_done(group_, "NCCL communicator initialisation (ncclCommInitRank)",
                            [&] { return finished.load(); }, [&] { init.detach(); });
    init.join();
    HYMBA_CUDA_CHECK(device_status);
    HYMBA_NCCL_CHECK(status);
  }

  void abort_comm() {
    if (!comm_) return;
    warn_nccl(ncclCommAbort(comm_), "ncclCommAbort", group_.rank());
    comm_ = nullptr;
  }

  const ProcessGroup& group_;
  cudaStream_t compute_;         // the model's kernels (nullptr: the legacy default stream)
  const Ordering ordering_;
  cudaStream_t side_ = nullptr;  // the collectives
  cudaEvent_t ready_ = nullptr;  // compute work before the next collective
  cudaEvent_t done_ = nullptr;   // the collectives before wait()
  ncclComm_t comm_ = nullptr;    // null in a group of one
  bool issued_ = false;          // collectives issued since the last wait()
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(const ProcessGroup& group, cudaStream_t compute,
                                                     Ordering ordering) {
  return std::make_unique<NcclCommunicator>(group, compute, ordering);
}

}  // namespace hymba

#endif  // HYMBA_HAVE_CUDA
