#include "trainer/gemm_algorithms.h"

namespace hymba {

void broadcast_gemm_choices(GemmChoices& c, const ProcessGroup& job) {
  int64_t head[2] = {c.library_version, int64_t(c.shapes.size())};
  job.broadcast(head, sizeof head, 0);
  c.library_version = head[0];
  c.shapes.resize(size_t(head[1]));
  job.broadcast(c.shapes.data(), head[1] * int64_t(sizeof(GemmChoice)), 0);
}

}  // namespace hymba

#ifdef HYMBA_HAVE_CUDA

namespace hymba {

GemmAlgorithms::GemmAlgorithms(const Config& cfg, cuda::Gemm& gemm, const std::optional<GemmChoices>& saved,
                               const std::string& checkpoint, const ProcessGroup& job, std::ostream& log)
    : gemm_(gemm), job_(job), log_(log), timing_(cfg.train.gemm_algorithms == "timed") {
  int64_t have = job.rank() == 0 && saved.has_value();
  job.broadcast(&have, sizeof have, 0);
  if (have) {
    GemmChoices choices = job.rank() == 0 ? *saved : GemmChoices{};
    broadcast_gemm_choices(choices, job);
    const int64_t refused = gemm.adopt(choices);
    log << "gemm: " << int64_t(choices.shapes.size()) - refused << " GEMM algorithms from " << checkpoint;
    if (refused > 0) {
      log << "; " << refused << " do not run here (cuBLASLt " << cuda::Gemm::library_version()
          << "; they were chosen with " << choices.library_version << ") and are chosen again"
          << (timing_ ? " by timing" : "")
          << ", so the resumed steps need not match an uninterrupted run's bits";
    }
    log << "\n";
  }
  gemm.set_timing(timing_);
}

void GemmAlgorithms::after_first_step() {
  gemm_.set_timing(false);
  const cuda::Gemm::TimingCounts& n = gemm_.timing_counts();
  if (timing_ && n.timed + n.untimed > 0) {
    log_ << "gemm: timed the cuBLASLt candidates of " << n.timed << " GEMM shapes on the first step; " << n.changed
         << " run faster than cuBLASLt's first choice (train.gemm_algorithms: timed)";
    if (n.untimed > 0) log_ << "; " << n.untimed << " kept the first choice (too little free memory to time them)";
    log_ << "\n";
  }
  if (job_.size() == 1) return;
  GemmChoices choices = gemm_.choices();
  broadcast_gemm_choices(choices, job_);
  // Ranks share one build, so rank 0's algorithms run everywhere; one that does not (a host with
  // another cuBLASLt) leaves its shape to be chosen again there, which changes bits, not results.
  if (job_.rank() != 0) gemm_.adopt(choices);
}

}  // namespace hymba

#endif
