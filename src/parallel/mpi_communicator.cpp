// The MPI backend of Communicator: host buffers, MPI's non-blocking collectives on a duplicate of
// MPI_COMM_WORLD, completed by the group's polling wait (parallel/mpi_check.h).
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
  explicit MpiCommunicator(const ProcessGroup& group) : group_(group) {
    if (group.size() == 1) return;  // a group of one copies and needs no MPI (nor mpirun)
    // A communicator of its own: these collectives, in flight across a backward pass, can never
    // be matched with the group's host collectives (loss sums) issued meanwhile on MPI_COMM_WORLD.
    MPI_Request request = MPI_REQUEST_NULL;
    HYMBA_MPI_CHECK(MPI_Comm_idup(MPI_COMM_WORLD, &comm_, &request));
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

  void all_gather_in_place(float* x, int64_t n) override {
    if (comm_ == MPI_COMM_NULL) return;
    const int count = detail::mpi_count(n, "Communicator::all_gather_in_place");
    MPI_Request request = MPI_REQUEST_NULL;
    HYMBA_MPI_CHECK(MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, count, MPI_FLOAT, comm_, &request));
    started(request, "all_gather_in_place");
  }

  void all_reduce_sum(float* x, int64_t n) override {
    if (comm_ == MPI_COMM_NULL) return;
    const int count = detail::mpi_count(n, "Communicator::all_reduce_sum");
    MPI_Request request = MPI_REQUEST_NULL;
    HYMBA_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, x, count, MPI_FLOAT, MPI_SUM, comm_, &request));
    started(request, "all_reduce_sum");
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
    const std::string what =
        pending_.size() == 1
            ? detail::concat("Communicator::wait (MPI ", names_.front(), ")")
            : detail::concat("Communicator::wait (MPI; ", pending_.size(), " collectives in flight, from ",
                             names_.front(), " to ", names_.back(), ")");
    detail::wait_for_requests(group_, what, pending_.data(), int(pending_.size()));
    pending_.clear();
    names_.clear();
  }

 private:
  // Keeps the request for wait(). Open MPI advances non-blocking collectives only inside MPI
  // calls, so each issue also tests the pending ones: the reduce-scatters started during backward
  // then progress while backward runs instead of all at wait().
  void started(MPI_Request request, const char* name) {
    pending_.push_back(request);
    names_.push_back(name);
    int flag = 0;
    HYMBA_MPI_CHECK(MPI_Testall(int(pending_.size()), pending_.data(), &flag, MPI_STATUSES_IGNORE));
    if (flag) {
      pending_.clear();
      names_.clear();
    }
  }

  const ProcessGroup& group_;
  MPI_Comm comm_ = MPI_COMM_NULL;     // null in a group of one
  std::vector<MPI_Request> pending_;  // issued, not yet known complete, in issue order
  std::vector<const char*> names_;    // their collectives, for the timeout message
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(const ProcessGroup& group) {
  return std::make_unique<MpiCommunicator>(group);
}

}  // namespace hymba
