// Internal to src/parallel: return-code checks for MPI and NCCL calls (a failure becomes a
// hymba::Error naming the call, the source line and the library's own message, like
// core/cuda_check.h), and the one polling wait every collective completes through.
//
// MPI's communicators keep their default error handler (MPI_ERRORS_ARE_FATAL): MPI itself then
// names the failing call and ends the whole job, which beats one rank throwing while the others
// wait out their timeout. HYMBA_MPI_CHECK catches what returns anyway.
#pragma once

// The C API only: the C++ bindings (deprecated since MPI 2.2) warn under -Wextra.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <string>

#include "core/error.h"
#include "parallel/process_group.h"

#ifdef HYMBA_HAVE_CUDA
#include <nccl.h>
#endif

namespace hymba::detail {

// A ProcessGroup's MPI communicator: MPI_COMM_WORLD, or one MPI_Comm_split made (owned: freed
// with the last group holding it, unless MPI has been finalised already).
struct MpiComm {
  MPI_Comm handle = MPI_COMM_NULL;
  bool owned = false;
  MpiComm(MPI_Comm h, bool own) : handle(h), owned(own) {}
  MpiComm(const MpiComm&) = delete;
  MpiComm& operator=(const MpiComm&) = delete;
  ~MpiComm();
};

inline std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(text, size_t(length));
}

// Polls done() until it returns true, sleeping between polls (20 µs at first, growing to 1 ms, so
// ranks oversubscribing a few cores leave them to the rank being waited for). Past
// group.timeout_seconds() it calls before_abort (if set; e.g. to abort an NCCL communicator) and
// then ends the job with group.abort, naming `what`: a dead or stuck rank must not hang the job.
void poll_until_done(const ProcessGroup& group, const std::string& what, const std::function<bool()>& done,
                     const std::function<void()>& before_abort = {});

// Completes MPI requests (non-blocking collectives) by poll_until_done over MPI_Testall.
void wait_for_requests(const ProcessGroup& group, const std::string& what, MPI_Request* requests, int count);

// An element count as MPI's int; larger counts are an error naming the collective.
int mpi_count(int64_t n, const char* what);

}  // namespace hymba::detail

#define HYMBA_MPI_CHECK(call)                                              \
  do {                                                                     \
    const int hymba_mpi_status_ = (call);                                  \
    if (hymba_mpi_status_ != MPI_SUCCESS) {                                \
      ::hymba::fail(__FILE__, ":", __LINE__, ": ", #call, ": ",            \
                    ::hymba::detail::mpi_error_string(hymba_mpi_status_)); \
    }                                                                      \
  } while (0)

#ifdef HYMBA_HAVE_CUDA
#define HYMBA_NCCL_CHECK(call)                                                                           \
  do {                                                                                                   \
    const ncclResult_t hymba_nccl_status_ = (call);                                                      \
    if (hymba_nccl_status_ != ncclSuccess) {                                                             \
      ::hymba::fail(__FILE__, ":", __LINE__, ": ", #call, ": ", ncclGetErrorString(hymba_nccl_status_)); \
    }                                                                                                    \
  } while (0)
#endif
