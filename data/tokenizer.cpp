// Encoding and decoding; the vocabulary's derived tables and identity. Reading and writing the
// two files is in tokenizer_files.cpp.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>

#include "core/error.h"
#include "core/rng.h"
#include "data/pretokenize.h"
#include "data/tokenizer_impl.h"

namespace hymba {

namespace {

// FNV-1a over a canonical serialisation: per id its kind and length-prefixed bytes, then the
// merges. Length prefixes and kinds keep different vocabularies from serialising alike.
std::string vocabulary_identity(const Vocabulary& v) {
  std::string s;
  auto put32 = [&](uint32_t x) {
    for (int i = 0; i < 4; ++i) s += char(x >> (8 * i));
  };
  put32(uint32_t(v.tokens.size()));
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    s += char(v.kinds[id]);
    put32(uint32_t(v.tokens[id].size()));
    s += v.tokens[id];
  }
  put32(uint32_t(v.merges.size()));
  for (const Merge& m : v.merges) put32(uint32_t(m.left)), put32(uint32_t(m.right));
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash_name(s)));
  return hex;
}

int32_t special_id(const Vocabulary& v, std::string_view name) {
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    if (v.kinds[id] == TokenKind::special && v.tokens[id] == name) return int32_t(id);
  }
  return -1;
}

// Each thread remembers the ids of the pieces it has encoded: in natural text a few thousand
// pieces make up most of it, so BPE runs once per distinct piece. Per thread, so encode() shares
// nothing mutable. Emptied when the thread switches tokenizer or the cache is full; long pieces
// (runs of symbols or spaces) rarely repeat and are not kept.
struct StringHash {
  using is_transparent = void;  // find() by string_view, without building a std::string
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
struct PieceCache {
  static constexpr size_t kMaxPieces = size_t(1) << 17;  // ~15 MB per thread at most
  static constexpr size_t kMaxPieceBytes = 64;
  uint64_t owner = 0;  // Impl::serial of the tokenizer
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> ids;
};

PieceCache& piece_cache_for(uint64_t serial) {
  thread_local PieceCache cache;
  if (cache.owner != serial) {
    cache.ids.clear();
    cache.owner = serial;
  }
  return cache;
}

}  // namespace

Tokenizer::Impl::Impl(Vocabulary v) : vocab(std::move(v)) {
  static std::atomic<uint64_t> next_serial{1};
  serial = next_serial++;
  byte_ids.fill(-1);
  for (size_t id = 0; id < vocab.tokens.size(); ++id) {
    if (vocab.kinds[id] == TokenKind::ordinary && vocab.tokens[id].size() == 1) {
      byte_ids[static_cast<unsigned char>(vocab.tokens[id][0])] = int32_t(id);
    }
  }
  HYMBA_ASSERT(std::find(byte_ids.begin(), byte_ids.end(), -1) == byte_ids.end());
  merge_of_pair.reserve(vocab.merges.size());
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const Merge& m = vocab.merges[rank];
    merge_of_pair.emplace(pair_key(m.left, m.right), RankedMerge{int32_t(rank), m.result});
  }
  eot_id = special_id(vocab, "<|endoftext|>");
  pad_id = special_id(vocab, "<|pad|>");
  identity = vocabulary_identity(vocab);
}

void Tokenizer::Impl::merge_piece(std::string_view piece, std::vector<int32_t>& out) const {
  // The piece's symbols as a linked list over their first byte's position: merging (p, next)
  // keeps the symbol at p and unlinks next.
  struct Symbol {
    int32_t id, prev, next;  // id −1: merged into the symbol before it; prev/next −1: none
  };
  // A candidate merge of the pair starting at `pos`, valid while those two symbols still hold
  // `left` and `right`.
  struct Candidate {
    int32_t rank, pos, left, right, result;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<Symbol> symbols;
  thread_local std::vector<Candidate> heap;  // min-heap on (rank, pos)
  const int32_t n = int32_t(piece.size());
  symbols.resize(size_t(n));
  heap.clear();
  auto consider = [&](int32_t pos) {
    if (pos < 0 || symbols[size_t(pos)].next < 0) return;
    const int32_t next = symbols[size_t(pos)].next;
    const int32_t left = symbols[size_t(pos)].id, right = symbols[size_t(next)].id;
    const auto it = merge_of_pair.find(pair_key(left, right));
    if (it == merge_of_pair.end()) return;
    heap.push_back({it->second.rank, pos, left, right, it->second.result});
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (int32_t i = 0; i < n; ++i) {
    symbols[size_t(i)] = {byte_ids[static_cast<unsigned char>(piece[size_t(i)])], i - 1,
                          i + 1 < n ? i + 1 : -1};
  }
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const Candidate c = heap.back();
    heap.pop_back();
    Symbol& s = symbols[size_t(c.pos)];
    if (s.id != c.left || s.next < 0 || symbols[size_t(s.next)].id != c.right) continue;  // stale
    Symbol& gone = symbols[size_t(s.next)];
    s.id = c.result;
    s.next = gone.next;
    if (gone.next >= 0) symbols[size_t(gone.next)].prev = c.pos;
    gone.id = -1;
    consider(s.prev);
    consider(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[size_t(i)].next) out.push_back(symbols[size_t(i)].id);
}

// ---- the public interface ------------------------------------------------------------------

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

void Tokenizer::encode(std::string_view text, std::vector<int32_t>& out) const {
  const Impl& m = *impl_;
  PieceCache& cache = piece_cache_for(m.serial);
  for (size_t begin = 0, end; begin < text.size(); begin = end) {
    end = piece_end(text, begin);
    const std::string_view piece = text.substr(begin, end - begin);
    if (piece.size() == 1) {
      out.push_back(m.byte_ids[static_cast<unsigned char>(piece[0])]);
      continue;
    }
    if (piece.size() > PieceCache::kMaxPieceBytes) {
      m.merge_piece(piece, out);
      continue;
    }
    auto it = cache.ids.find(piece);
    if (it == cache.ids.end()) {
      if (cache.ids.size() >= PieceCache::kMaxPieces) cache.ids.clear();
      std::vector<int32_t> ids;
      m.merge_piece(piece, ids);
      it = cache.ids.emplace(std::string(piece), std::move(ids)).first;
    }
    out.insert(out.end(), it->second.begin(), it->second.end());
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  encode(text, out);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  const Vocabulary& v = impl_->vocab;
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || size_t(id) >= v.tokens.size() || v.kinds[size_t(id)] == TokenKind::unused) {
      fail("decode: id ", id, " at position ", i, " is not in the vocabulary (", vocab_size(),
           " ids)");
    }
    text += v.tokens[size_t(id)];
  }
  return text;
}

int64_t Tokenizer::vocab_size() const { return int64_t(impl_->vocab.tokens.size()); }
int32_t Tokenizer::eot_id() const { return impl_->eot_id; }
int32_t Tokenizer::pad_id() const { return impl_->pad_id; }
const std::string& Tokenizer::identity() const { return impl_->identity; }

}  // namespace hymba
