// The processes of one training job, and the small host-side collectives the training loop needs
// (loss and norm sums, the resume decision, checkpoint gathers).
//
// Launched by mpirun (Open MPI sets OMPI_COMM_WORLD_SIZE; PMI_SIZE / PMIX_RANK are accepted too),
// the group initialises MPI and holds every rank of MPI_COMM_WORLD. Started directly, it is a
// group of one and never touches MPI, so single-process runs and tests need no launcher.
//
// Every collective must be called by every rank in the same order. None of them waits forever:
// each is issued non-blocking and polled; past timeout_seconds() the rank prints which collective
// timed out and aborts the whole job (MPI_Abort), so a dead or stuck rank ends the job with an
// error instead of a hang.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace hymba {

namespace detail {
struct MpiComm;  // the group's MPI communicator (parallel/mpi_check.h)
}

class ProcessGroup {
 public:

  // A group of one: no MPI.
  ProcessGroup() = default;
  // From the environment: initialises MPI (thread level FUNNELED: only the main thread calls
  // MPI) when launched by mpirun, else a group of one. argc/argv go to MPI_Init_thread.
  static ProcessGroup from_environment(int* argc, char*** argv);
  ~ProcessGroup();  // finalises MPI when this object initialised it
  ProcessGroup(ProcessGroup&& other) noexcept;
  ProcessGroup& operator=(ProcessGroup&&) = delete;
  ProcessGroup(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // among the ranks on this host (picks the GPU)
  int local_size() const { return local_size_; }
  bool uses_mpi() const { return mpi_; }  // launched by mpirun (also with -np 1)

  // The ranks of this group with the same `color`, ordered by `key` (MPI_Comm_split): a
  // tensor-parallel or data-parallel subgroup (parallel/grid.h). Every rank calls it. The
  // subgroup shares the timeout; its errors still end the whole job and name the job-wide rank.
  ProcessGroup split(int color, int key) const;

  double timeout_seconds() const { return timeout_s_; }
  void set_timeout_seconds(double s) { timeout_s_ = s; }

  // x [n] on every rank becomes Σ over ranks, added in rank order (every rank gets the same bits,
  // and the same inputs give the same result on every run).
  void all_reduce_sum(double* x, int64_t n) const;
  // root's bytes / string to every rank.
  void broadcast(void* data, int64_t bytes, int root) const;
  void broadcast(std::string& s, int root) const;
  // send [n] of every rank into recv [size·n] on root (rank q's at q·n); recv is ignored elsewhere.
  void gather(const float* send, float* recv, int64_t n, int root) const;
  // send [size·n] on root: rank q receives send[q·n, (q+1)·n) into recv [n].
  void scatter(const float* send, float* recv, int64_t n, int root) const;
  void barrier() const;

  // Prints "error: rank R of N: <message>" (R, N: the job's, not a subgroup's) to stderr and ends the whole job with exit status 1
  // (MPI_Abort under MPI, exit(1) in a group of one).
  [[noreturn]] void abort(const std::string& message) const;

  // Internal to src/parallel: the group's MPI communicator (null in a group of one).
  const detail::MpiComm* mpi_comm() const { return comm_.get(); }

 private:
  bool mpi_ = false;
  bool owns_mpi_ = false;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  int job_rank_ = 0, job_size_ = 1;        // in MPI_COMM_WORLD, for error messages
  std::shared_ptr<detail::MpiComm> comm_;  // null in a group of one
  double timeout_s_ = 300;
};

}  // namespace hymba
