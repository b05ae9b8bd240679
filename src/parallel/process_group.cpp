#include "parallel/process_group.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"
#include "parallel/mpi_check.h"

namespace hymba {

namespace detail {

MpiComm::~MpiComm() {
  if (!owned) return;
  int finalized = 0;
  if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return;
  const int status = MPI_Comm_free(&handle);
  if (status != MPI_SUCCESS) std::fprintf(stderr, "warning: MPI_Comm_free: %s\n", mpi_error_string(status).c_str());
}

void poll_until_done(const ProcessGroup& group, const std::string& what, const std::function<bool()>& done,
                     const std::function<void()>& before_abort) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  auto nap = std::chrono::microseconds(20);
  while (!done()) {
    const double waited = std::chrono::duration<double>(Clock::now() - start).count();
    if (waited > group.timeout_seconds()) {
      if (before_abort) before_abort();
      group.abort(concat(what, " timed out after ", group.timeout_seconds(),
                         " s: another rank has died or stopped; raise parallel.timeout_s if a step "
                         "legitimately takes longer"));
    }
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, std::chrono::microseconds(1000));
  }
}

void wait_for_requests(const ProcessGroup& group, const std::string& what, MPI_Request* requests, int count) {
  poll_until_done(group, what, [&] {
    int flag = 0;
    // MPI_Testall also drives the progress of non-blocking collectives.
    HYMBA_MPI_CHECK(MPI_Testall(count, requests, &flag, MPI_STATUSES_IGNORE));
    return flag != 0;
  });
}

int mpi_count(int64_t n, const char* what) {
  if (n < 0 || n > INT_MAX) fail(what, ": ", n, " elements: MPI counts are ints (at most ", INT_MAX, ")");
  return int(n);
}

}  // namespace detail

namespace {

// Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE; PMI (MPICH, Slurm) and PMIx launchers the others.
bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMI_SIZE") || std::getenv("PMIX_RANK");
}

}  // namespace

ProcessGroup ProcessGroup::from_environment(int* argc, char*** argv) {
  ProcessGroup g;
  if (!launched_by_mpirun()) return g;
  int initialized = 0;
  HYMBA_MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    int provided = 0;
    HYMBA_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    g.owns_mpi_ = true;  // from here on, g's destructor finalises (also if a check below throws)
    if (provided < MPI_THREAD_FUNNELED) {
      fail("MPI_Init_thread: this MPI library provides thread level ", provided,
           ", below MPI_THREAD_FUNNELED (", MPI_THREAD_FUNNELED,
           "): the job runs OpenMP and loader threads beside the one calling MPI");
    }
  }
  g.mpi_ = true;
  HYMBA_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &g.rank_));
  HYMBA_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &g.size_));
  g.job_rank_ = g.rank_;
  g.job_size_ = g.size_;
  g.comm_ = std::make_shared<detail::MpiComm>(MPI_COMM_WORLD, false);
  // The ranks sharing this host's memory: local_rank picks the GPU.
  MPI_Comm host = MPI_COMM_NULL;
  HYMBA_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g.rank_, MPI_INFO_NULL, &host));
  HYMBA_MPI_CHECK(MPI_Comm_rank(host, &g.local_rank_));
  HYMBA_MPI_CHECK(MPI_Comm_size(host, &g.local_size_));
  HYMBA_MPI_CHECK(MPI_Comm_free(&host));
  return g;
}

ProcessGroup::ProcessGroup(ProcessGroup&& other) noexcept
    : mpi_(other.mpi_),
      owns_mpi_(std::exchange(other.owns_mpi_, false)),
      rank_(other.rank_),
      size_(other.size_),
      local_rank_(other.local_rank_),
      local_size_(other.local_size_),
      job_rank_(other.job_rank_),
      job_size_(other.job_size_),
      comm_(std::move(other.comm_)),
      timeout_s_(other.timeout_s_) {}

ProcessGroup ProcessGroup::split(int color, int key) const {
  ProcessGroup g;
  g.mpi_ = mpi_;
  g.local_rank_ = local_rank_;
  g.local_size_ = local_size_;
  g.job_rank_ = job_rank_;
  g.job_size_ = job_size_;
  g.timeout_s_ = timeout_s_;
  if (!comm_) return g;  // a group of one splits into itself
  // MPI_Comm_split is blocking, but every rank reaches it right after the launch-time setup:
  // a rank missing here has failed already, and MPI's default handler ends the job.
  MPI_Comm sub = MPI_COMM_NULL;
  HYMBA_MPI_CHECK(MPI_Comm_split(comm_->handle, color, key, &sub));
  g.comm_ = std::make_shared<detail::MpiComm>(sub, true);
  HYMBA_MPI_CHECK(MPI_Comm_rank(sub, &g.rank_));
  HYMBA_MPI_CHECK(MPI_Comm_size(sub, &g.size_));
  return g;
}

ProcessGroup::~ProcessGroup() {
  if (!owns_mpi_) return;
  int finalized = 0;
  if (MPI_Finalized(&finalized) != MPI_SUCCESS || finalized) return;
  // A destructor cannot throw: a failure is reported and otherwise ignored (the process ends).
  const int status = MPI_Finalize();
  if (status != MPI_SUCCESS) {
    std::fprintf(stderr, "warning: rank %d: MPI_Finalize: %s\n", rank_,
                 detail::mpi_error_string(status).c_str());
  }
}

void ProcessGroup::all_reduce_sum(double* x, int64_t n) const {
  if (size_ == 1) return;
  // MPI_Allreduce may add in a different order on each rank (and per algorithm); gathering every
  // vector and adding in rank order gives every rank the same bits on every run.
  const int count = detail::mpi_count(n, "ProcessGroup::all_reduce_sum");
  std::vector<double> all(size_t(n) * size_t(size_));  // [size, n]
  MPI_Request request = MPI_REQUEST_NULL;
  HYMBA_MPI_CHECK(
      MPI_Iallgather(x, count, MPI_DOUBLE, all.data(), count, MPI_DOUBLE, comm_->handle, &request));
  detail::wait_for_requests(*this, "ProcessGroup::all_reduce_sum", &request, 1);
  for (int64_t i = 0; i < n; ++i) {
    double sum = all[size_t(i)];
    for (int q = 1; q < size_; ++q) sum += all[size_t(q) * size_t(n) + size_t(i)];
    x[i] = sum;
  }
}

namespace {

void check_root(int root, int size, const char* what) {
  if (root < 0 || root >= size) fail(what, ": root ", root, " is not a rank of a group of ", size);
}

}  // namespace

void ProcessGroup::broadcast(void* data, int64_t bytes, int root) const {
  check_root(root, size_, "ProcessGroup::broadcast");
  if (size_ == 1 || bytes == 0) return;
  // MPI counts are ints: a large buffer (a checkpoint image) goes in 1 GiB pieces, all in flight.
  constexpr int64_t kPiece = int64_t(1) << 30;
  std::vector<MPI_Request> requests;
  for (int64_t at = 0; at < bytes; at += kPiece) {
    const int count = int(std::min(kPiece, bytes - at));
    requests.push_back(MPI_REQUEST_NULL);
    HYMBA_MPI_CHECK(
        MPI_Ibcast(static_cast<char*>(data) + at, count, MPI_BYTE, root, comm_->handle, &requests.back()));
  }
  detail::wait_for_requests(*this, "ProcessGroup::broadcast", requests.data(), int(requests.size()));
}

void ProcessGroup::broadcast(std::string& s, int root) const {
  check_root(root, size_, "ProcessGroup::broadcast");
  if (size_ == 1) return;
  int64_t length = int64_t(s.size());
  broadcast(&length, sizeof length, root);
  s.resize(size_t(length));
  broadcast(s.data(), length, root);
}

void ProcessGroup::gather(const float* send, float* recv, int64_t n, int root) const {
  check_root(root, size_, "ProcessGroup::gather");
  if (size_ == 1) {
    if (n > 0 && send != recv) std::memmove(recv, send, size_t(n) * sizeof(float));
    return;
  }
  const int count = detail::mpi_count(n, "ProcessGroup::gather");
  // MPI forbids aliased buffers; root's part already in place is MPI_IN_PLACE.
  const bool in_place = rank_ == root && send == recv + int64_t(root) * n;
  MPI_Request request = MPI_REQUEST_NULL;
  HYMBA_MPI_CHECK(MPI_Igather(in_place ? MPI_IN_PLACE : send, count, MPI_FLOAT, recv, count, MPI_FLOAT, root,
                              comm_->handle, &request));
  detail::wait_for_requests(*this, "ProcessGroup::gather", &request, 1);
}

void ProcessGroup::scatter(const float* send, float* recv, int64_t n, int root) const {
  check_root(root, size_, "ProcessGroup::scatter");
  if (size_ == 1) {
    if (n > 0 && send != recv) std::memmove(recv, send, size_t(n) * sizeof(float));
    return;
  }
  const int count = detail::mpi_count(n, "ProcessGroup::scatter");
  const bool in_place = rank_ == root && recv == send + int64_t(root) * n;
  MPI_Request request = MPI_REQUEST_NULL;
  HYMBA_MPI_CHECK(MPI_Iscatter(send, count, MPI_FLOAT, in_place ? MPI_IN_PLACE : recv, count, MPI_FLOAT, root,
                               comm_->handle, &request));
  detail::wait_for_requests(*this, "ProcessGroup::scatter", &request, 1);
}

void ProcessGroup::barrier() const {
  if (size_ == 1) return;
  MPI_Request request = MPI_REQUEST_NULL;
  HYMBA_MPI_CHECK(MPI_Ibarrier(comm_->handle, &request));
  detail::wait_for_requests(*this, "ProcessGroup::barrier", &request, 1);
}

void ProcessGroup::abort(const std::string& message) const {
  std::cout.flush();  // what the log said so far comes before the error
  std::fprintf(stderr, "error: rank %d of %d: %s\n", job_rank_, job_size_, message.c_str());
  std::fflush(stderr);
  if (mpi_) {
    MPI_Abort(MPI_COMM_WORLD, 1);  // ends every rank; it does not return
    std::_Exit(1);
  }
  std::exit(1);
}

}  // namespace hymba
