// The GEMM algorithms a GPU run chose (cuda/gemm.h), as plain numbers: a checkpoint stores them
// (io/checkpoint.h), so a resumed run computes with the same algorithms, and so the same bits, as
// the run it continues. Plain C++ without CUDA: every build reads and writes checkpoints.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace hymba {

// One GEMM shape and its algorithm: the shape's numbers (trans_a, trans_b, M, N, K, lda, ldb,
// ldc, the cudaDataType_t of A and B, that of C, beta != 0), then cuBLASLt's opaque
// cublasLtMatmulAlgo_t (8 words, as their bit patterns).
inline constexpr int kGemmShapeWords = 11, kGemmAlgoWords = 8;
inline constexpr int kGemmChoiceWords = kGemmShapeWords + kGemmAlgoWords;
using GemmChoice = std::array<int64_t, kGemmChoiceWords>;

struct GemmChoices {
  int64_t library_version = 0;  // cublasLtGetVersion() of the process that chose them
  std::vector<GemmChoice> shapes;
};

// Why `c`'s shape cannot be a GEMM of the model (a size or leading dimension below 1, a flag
// other than 0 or 1); empty when it can. The algorithm words are cuBLASLt's to check.
std::string gemm_shape_problem(const GemmChoice& c);

}  // namespace hymba
