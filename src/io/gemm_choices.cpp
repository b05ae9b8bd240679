#include "io/gemm_choices.h"

namespace hymba {

std::string gemm_shape_problem(const GemmChoice& c) {
  static const char* const kNames[kGemmShapeWords] = {"trans_a", "trans_b", "M",       "N",       "K",          "lda",
                                                      "ldb",     "ldc",     "type_ab", "type_c",  "beta_nonzero"};
  for (int i : {0, 1, 10}) {
    if (c[size_t(i)] != 0 && c[size_t(i)] != 1) return std::string(kNames[i]) + " is " + std::to_string(c[size_t(i)]) + ", not 0 or 1";
  }
  for (int i = 2; i < 8; ++i) {
    if (c[size_t(i)] < 1) return std::string(kNames[i]) + " is " + std::to_string(c[size_t(i)]) + ", below 1";
  }
  return {};
}

}  // namespace hymba
