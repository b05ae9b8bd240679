// A job that must end with an error instead of hanging (run by ctest under mpirun -np 2,
// tests/CMakeLists.txt, which matches the output):
//   skip       rank 1 never enters the all-reduce rank 0 waits in: rank 0 times out after 2 s
//              and aborts the job, naming the collective.
//   skip-comm  the same for an MPI communicator's wait().
//   kill       rank 1 dies (SIGKILL) while rank 0 waits: mpirun notices the death, or rank 0's
//              timeout ends the job, whichever comes first.
//   alone      without mpirun: a group of one prints the error and exits with status 1.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "core/error.h"
#include "parallel/communicator.h"
#include "parallel/process_group.h"

int main(int argc, char** argv) {
  hymba::ProcessGroup group = hymba::ProcessGroup::from_environment(&argc, &argv);
  const std::string mode = argc == 2 ? argv[1] : "";
  if (mode == "alone") group.abort("the abort of a group of one");
  if ((mode != "skip" && mode != "skip-comm" && mode != "kill") || group.size() != 2) {
    std::fprintf(stderr,
                 "usage: mpirun -np 2 mpi_timeout_program skip|skip-comm|kill, or alone without mpirun\n");
    return 2;
  }
  try {
    std::unique_ptr<hymba::Communicator> comm = hymba::make_mpi_communicator(group);
    group.barrier();  // both ranks are up (under the default timeout: a loaded machine starts slowly)
    group.set_timeout_seconds(mode == "kill" ? 20 : 2);
    if (group.rank() == 1) {
      if (mode == "kill") std::raise(SIGKILL);
      sleep(30);  // stopped: never joins; rank 0's abort ends this process long before
      return 0;
    }
    if (mode == "skip-comm") {
      float x = 1;
      comm->all_reduce_sum(&x, 1);
      comm->wait();
    } else {
      double x = 1;
      group.all_reduce_sum(&x, 1);
    }
    std::fprintf(stderr, "rank 0: the collective completed without rank 1\n");
    return 1;
  } catch (const hymba::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
