// Inside the tokenizer: what tokenizer.cpp (encoding), tokenizer_files.cpp (GPT-2's two files)
// and bpe_trainer.cpp share. Not for use elsewhere.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/tokenizer.h"

namespace hymba {

enum class TokenKind : uint8_t { unused, ordinary, special };

struct Merge {
  int32_t left, right, result;  // result's bytes are left's bytes then right's
};

// A vocabulary as both files describe it; the loader and the trainer build one and check it.
struct Vocabulary {
  std::vector<std::string> tokens;  // by id: the token's bytes, or a special token's name
  std::vector<TokenKind> kinds;     // by id; `unused` for ids the vocabulary skips
  std::vector<Merge> merges;        // by rank: merges[0] applies first
};

struct Tokenizer::Impl {
  // Derives the lookup tables. `vocab` must be consistent: every byte has an ordinary token and
  // every merge names ordinary tokens.
  explicit Impl(Vocabulary vocab);

  // Appends the ids of one pre-tokenizer piece, merged by rank: always the lowest-ranked
  // adjacent pair first, the leftmost of equals first (GPT-2's rule). A heap keeps it
  // O(n log n), so a megabyte-long piece (a run of symbols) costs no more than its length.
  void merge_piece(std::string_view piece, std::vector<int32_t>& out) const;

  static uint64_t pair_key(int32_t left, int32_t right) {
    return uint64_t(uint32_t(left)) << 32 | uint32_t(right);
  }
  struct RankedMerge {
    int32_t rank, result;
  };

  Vocabulary vocab;
  std::array<int32_t, 256> byte_ids{};                       // byte -> its token
  std::unordered_map<uint64_t, RankedMerge> merge_of_pair;  // pair_key(left, right) -> merge
  int32_t eot_id = -1, pad_id = -1;
  std::string identity;
  // Distinguishes tokenizers in the per-thread piece caches: an address could be reused by a
  // later tokenizer, a serial number is not.
  uint64_t serial = 0;
};

}  // namespace hymba
