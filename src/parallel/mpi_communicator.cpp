// The MPI backend of Communicator: host buffers, MPI's non-blocking collectives on a duplicate of
// the group's communicator, completed by the group's polling wait (parallel/mpi_check.h): at
// wait() (Ordering::overlapped) or before the call returns (Ordering::in_order).
#include <algorithm>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "parallel/communicator.h"
#include "parallel/mpi_check.h"

namespace hymba {
namespace {

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(const ProcessGroup& group, Ordering ordering) : group_(group), ordering_(ordering) {
    if (group.size() == 1) return;  // a group of one copies and needs no MPI (nor mpirun)
    // A communicator of its own: these collectives, in flight across a backward pass, can never
    // be matched with the group's host collectives (loss sums) issued meanwhile.
    MPI_Request request = MPI_REQUEST_NULL;
    HYMBA_MPI_CHECK(MPI_Comm_idup(group.mpi_comm()->handle, &comm_, &request));
    detail::wait_for_requests(group_, "make_mpi_communicator (MPI_Comm_idup)", &request, 1);
  }

  ~MpiCommunicator() override {
    // Unwinding from an error, the other ranks may never join the pending collectives, and
    // waiting would replace the error by a timeout: the process is ending, the requests are left.
    if (!pending_.empty() && std::uncaught_exceptions() == 0) {
      try {
        wait();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "warning: rank %d: MPI communicator: %s\n", group_.rank(), e.what());
      }
    }
    if (comm_ == MPI_COMM_NULL || !pending_.empty()) return;
    int finalized = 0;
    if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return;
    const int status = MPI_Comm_free(&comm_);
    if (status != MPI_SUCCESS) {
      std::fprintf(stderr, "warning: rank %d: MPI_Comm_free: %s\n", group_.rank(),
                   detail::mpi_error_string(status).c_str());
    }
  }

  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return group_.rank(); }
  int size() const override { return group_.size(); }

  void reduce_scatter_sum(const float* send, float* recv, int64_t n) override {
    if (comm_ == MPI_COMM_NULL) {
      std::copy_n(send, n, recv);
      return;
    }
    const int count = detail::mpi_count(n, "Communicator::reduce_scatter_sum");
    MPI_Request request = MPI_REQUEST_NULL;
    HYMBA_MPI_CHECK(MPI_Ireduce_scatter_block(send, recv, count, MPI_FLOAT, MPI_SUM, comm_, &request));
    started(request, "reduce_scatter_sum");
  }

  void all_gather_in_place(void* x, int64_t n, Element type) override {
    if (comm_ == MPI_COMM_NULL) return;
    const int count = detail::mpi_count(n, "Communicator::all_gather_in_place");
    MPI_Request request = MPI_REQUEST_NULL;
    HYMBA_MPI_CHECK(MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, count, datatype(type), comm_, &request));
    started(request, "all_gather_in_place");
  }

  void all_reduce_sum(void* x, int64_t n, Element type) override {
    if (comm_ == MPI_COMM_NULL) return;
    const int count = detail::mpi_count(n, "Communicator::all_reduce_sum");
    // MPI_Allreduce may add in a different order on each rank, and tensor parallelism needs the
    // same bits everywhere (replicated activations and weights must not drift apart): every
    // rank's vector is gathered and added in rank order.
    const size_t bytes = size_t(n) * element_size(type);
    gathered_.resize(bytes * size_t(size()));
    MPI_Request request = MPI_REQUEST_NULL;
    HYMBA_MPI_CHECK(MPI_Iallgather(x, count, datatype(type), gathered_.data(), count, datatype(type), comm_, &request));
    detail::wait_for_requests(group_, "Communicator::all_reduce_sum (MPI)", &request, 1);
    if (type == Element::f32) add_in_rank_order(static_cast<float*>(x), n);
    else add_in_rank_order(static_cast<double*>(x), n);
  }

  void broadcast(float* x, int64_t n, int root) override {
    if (root < 0 || root >= size()) {
      fail("Communicator::broadcast: root ", root, " is not a rank of a group of ", size());
    }
    if (comm_ == MPI_COMM_NULL) return;
    const int count = detail::mpi_count(n, "Communicator::broadcast");
    MPI_Request request = MPI_REQUEST_NULL;
    HYMBA_MPI_CHECK(MPI_Ibcast(x, count, MPI_FLOAT, root, comm_, &request));
    started(request, "broadcast");
  }

  void wait() override {
    if (pending_.empty()) return;
    complete_pending();
  }

 private:
  static MPI_Datatype datatype(Element type) {
    switch (type) {
      case Element::f32: return MPI_FLOAT;
      case Element::f64: return MPI_DOUBLE;
      case Element::bf16: break;
    }
    fail("the MPI communicator moves host float and double buffers; bf16 activations need NCCL");
  }
  static size_t element_size(Element type) { return type == Element::f64 ? sizeof(double) : sizeof(float); }

  // x [n] = Σ over ranks q of gathered_[q·n, (q+1)·n), q ascending.
  template <class T>
  void add_in_rank_order(T* x, int64_t n) const {
    const T* all = reinterpret_cast<const T*>(gathered_.data());  // [size, n]
    for (int64_t i = 0; i < n; ++i) {
      T sum = all[i];
      for (int q = 1; q < size(); ++q) sum += all[int64_t(q) * n + i];
      x[i] = sum;
    }
  }

  void complete_pending() {
    const std::string what =
        pending_.size() == 1
            ? detail::concat("Communicator::wait (MPI ", names_.front(), ")")
            : detail::concat("Communicator::wait (MPI; ", pending_.size(), " collectives in flight, from ",
                             names_.front(), " to ", names_.back(), ")");
    detail::wait_for_requests(group_, what, pending_.data(), int(pending_.size()));
    pending_.clear();
    names_.clear();
  }

  // Keeps the request for wait(), or completes it now (Ordering::in_order). Open MPI advances
  // non-blocking collectives only inside MPI calls, so each issue also tests the pending ones:
  // the reduce-scatters started during backward then progress while backward runs instead of
  // all at wait().
  void started(MPI_Request request, const char* name) {
    pending_.push_back(request);
    names_.push_back(name);
    if (ordering_ == Ordering::in_order) {
      complete_pending();
      return;
    }
    int flag = 0;
    HYMBA_MPI_CHECK(MPI_Testall(int(pending_.size()), pending_.data(), &flag, MPI_STATUSES_IGNORE));
    if (flag) {
      pending_.clear();
      names_.clear();
    }
  }

  const ProcessGroup& group_;
  const Ordering ordering_;
  MPI_Comm comm_ = MPI_COMM_NULL;     // null in a group of one
  std::vector<char> gathered_;        // all_reduce_sum's [size, n] staging
  std::vector<MPI_Request> pending_;  // issued, not yet known complete, in issue order
  std::vector<const char*> names_;    // their collectives, for the timeout message
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const ProcessGroup& group, Ordering ordering) {
  return std::make_unique<MpiCommunicator>(group, ordering);
}

std::unique_ptr<Communicator> make_communicator(const ProcessGroup& group, bool host_buffers, Ordering ordering) {
  if (host_buffers) return make_mpi_communicator(group, ordering);
#ifdef HYMBA_HAVE_CUDA
  return make_nccl_communicator(group, nullptr, ordering);
#else
  fail("make_communicator: device buffers need a build with CUDA");
#endif
}

}  // namespace hymba
