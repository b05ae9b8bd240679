// The GEMM algorithms of a GPU run (train.gemm_algorithms; cuda/gemm.h). A fresh run with
// `timed` times each GEMM shape's cuBLASLt candidates on its first step and keeps the fastest; a
// resumed run takes the algorithms its checkpoint kept, so its steps compute the bits an
// uninterrupted run would. Shapes the checkpoint lacks (one written by the CPU, or imported), or
// whose algorithm does not run with this cuBLASLt, are chosen as on a fresh run; the log says so,
// since those steps then need not match an uninterrupted run's bits. After the first step every
// rank takes job rank 0's algorithms: the replicas compute alike, and the checkpoint (which rank 0
// writes) holds what every rank runs. Shapes first seen after the first step (validation's) take
// cuBLASLt's first candidate. GemmAlgorithms is built only with CUDA.
#pragma once

#include <optional>
#include <ostream>

#include "config/config.h"
#include "io/gemm_choices.h"
#include "parallel/process_group.h"

namespace hymba {

// Job rank 0's list to every rank of `job` (every rank calls it; the others' lists are replaced).
void broadcast_gemm_choices(GemmChoices& c, const ProcessGroup& job);

}  // namespace hymba

#ifdef HYMBA_HAVE_CUDA

#include "cuda/gemm.h"

namespace hymba {

class GemmAlgorithms {
 public:
  // Before the first step. `saved`: job rank 0's checkpoint's algorithms (ignored elsewhere), from
  // `checkpoint`; none for a fresh start or a checkpoint without them.
  GemmAlgorithms(const Config& cfg, cuda::Gemm& gemm, const std::optional<GemmChoices>& saved,
                 const std::string& checkpoint, const ProcessGroup& job, std::ostream& log);
  // After the first step (every rank calls it): timing ends, and rank 0's algorithms go to all.
  void after_first_step();

 private:
  cuda::Gemm& gemm_;
  const ProcessGroup& job_;
  std::ostream& log_;
  bool timing_;
};

}  // namespace hymba

#endif
