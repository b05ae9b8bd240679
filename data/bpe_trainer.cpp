// BPE training: count the corpus's pre-tokenizer pieces (in parallel), then learn merges one at a
// time, always the most frequent adjacent pair. Pair counts are updated incrementally: a merge
// visits only the pieces that hold its pair, and a heap with lazily corrected entries finds the
// next best pair, so training costs about the corpus's distinct pieces times their length, not
// one full recount per merge.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <ostream>
#include <queue>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "data/pretokenize.h"
#include "data/tokenizer_impl.h"

namespace hymba {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A special token's name must never equal a learned token's encoder.json key. Printable ASCII
// (no space) stands for itself in GPT-2's byte alphabet, and a learned token lies inside one
// pre-tokenizer piece. Every part of a piece is one piece itself, except parts of the
// contractions 're 've 'll (such as 'r), so a name that splits into two or more pieces and is
// not such a part is safe.
void check_specials(const BpeTrainOptions& o) {
  std::unordered_set<std::string> seen;
  for (const std::string& name : o.specials) {
    const bool printable = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return c > ' ' && c <= '~';
    });
    const bool in_contraction = std::string_view("'re 've 'll").find(name) != std::string_view::npos;
    if (!printable || in_contraction || piece_end(name, 0) == name.size()) {
      fail("special token \"", name, "\": a name must be printable ASCII without spaces and more ",
           "than one pre-tokenizer piece (like <|name|>), so that no learned token can share it");
    }
    if (!seen.insert(name).second) fail("special token \"", name, "\" is listed twice");
  }
  const int64_t base = int64_t(o.specials.size()) + 256;
  if (o.vocab_size < base) {
    fail("vocab_size ", o.vocab_size, " is too small: the special tokens and the 256 bytes alone take ",
         base);
  }
}

// ---- counting pieces -----------------------------------------------------------------------

// Runs fn(0) .. fn(n − 1) on n threads and waits for them.
void run_on_threads(size_t n, const std::function<void(size_t)>& fn) {
  std::vector<std::thread> pool;
  for (size_t t = 0; t < n; ++t) pool.emplace_back(fn, t);
  for (auto& th : pool) th.join();
}

using PieceCounts = std::unordered_map<std::string_view, int64_t>;

// Cuts the documents into parts of about 1 MB at safe split points, so that threads can share
// even a single long document and still see exactly the pieces of the whole.
std::vector<std::string_view> split_for_counting(std::span<const std::string_view> documents) {
  constexpr size_t kPartBytes = size_t(1) << 20;
  std::vector<std::string_view> parts;
  for (std::string_view doc : documents) {
    while (doc.size() > kPartBytes) {
      const size_t cut = safe_split_point(doc, kPartBytes);
      parts.push_back(doc.substr(0, cut));
      doc.remove_prefix(cut);
    }
    if (!doc.empty()) parts.push_back(doc);
  }
  return parts;
}

// Every distinct piece with its count, sorted by bytes (so everything after this point sees the
// same input whatever the thread count). Each thread counts whole parts into `threads` shards
// keyed by hash; then thread s adds up shard s of every thread.
std::vector<std::pair<std::string_view, int64_t>> count_pieces(
    std::span<const std::string_view> documents, int threads) {
  const std::vector<std::string_view> parts = split_for_counting(documents);
  const size_t shards = size_t(threads);
  std::vector<std::vector<PieceCounts>> local(shards, std::vector<PieceCounts>(shards));
  std::atomic<size_t> next_part{0};
  auto count = [&](size_t t) {
    const std::hash<std::string_view> hash;
    for (size_t p; (p = next_part++) < parts.size();) {
      const std::string_view text = parts[p];
      for (size_t begin = 0, end; begin < text.size(); begin = end) {
        end = piece_end(text, begin);
        const std::string_view piece = text.substr(begin, end - begin);
        ++local[t][hash(piece) % shards][piece];
      }
    }
  };
  auto gather = [&](size_t s) {
    for (size_t t = 1; t < shards; ++t) {
      for (const auto& [piece, n] : local[t][s]) local[0][s][piece] += n;
      local[t][s] = PieceCounts();
    }
  };
  run_on_threads(shards, count);
  run_on_threads(shards, gather);
  std::vector<std::pair<std::string_view, int64_t>> pieces;
  for (const PieceCounts& shard : local[0]) pieces.insert(pieces.end(), shard.begin(), shard.end());
  std::sort(pieces.begin(), pieces.end());
  return pieces;
}

// ---- learning merges -----------------------------------------------------------------------

class MergeLearner {
 public:
  MergeLearner(const std::vector<std::pair<std::string_view, int64_t>>& pieces,
               const std::vector<std::string>& specials)
      : vocab_{specials, std::vector<TokenKind>(specials.size(), TokenKind::special), {}},
        first_byte_id_(int32_t(specials.size())),
        heap_(HeapOrder{&vocab_.tokens}) {
    for (int b = 0; b < 256; ++b) add_token(std::string(1, char(b)));
    words_.reserve(pieces.size());
    for (const auto& [piece, count] : pieces) {
      Word w{{}, count};
      for (unsigned char b : piece) w.symbols.push_back(byte_id(b));
      words_.push_back(std::move(w));
    }
    for (int32_t w = 0; w < int32_t(words_.size()); ++w) {
      const auto& s = words_[size_t(w)].symbols;
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t key = Tokenizer::Impl::pair_key(s[i], s[i + 1]);
        pair_count_[key] += words_[size_t(w)].count;
        note_word(key, w);
      }
    }
    for (const auto& [key, count] : pair_count_) heap_.push({count, key});
  }

  // Learns the next merge; false when no adjacent pair is left.
  bool learn_one() {
    for (;;) {
      if (heap_.empty()) return false;
      const HeapEntry top = heap_.top();
      heap_.pop();
      const auto it = pair_count_.find(top.pair);
      const int64_t count = it == pair_count_.end() ? 0 : it->second;
      if (count == top.count) {
        apply(top.pair);
        return true;
      }
      // Stale: the pair lost occurrences since this entry went in (or has a newer entry).
      if (count > 0 && count < top.count) heap_.push({count, top.pair});
    }
  }

  int64_t vocab_size() const { return int64_t(vocab_.tokens.size()); }
  size_t merges() const { return vocab_.merges.size(); }
  Vocabulary take_vocabulary() { return std::move(vocab_); }

 private:
  struct Word {
    std::vector<int32_t> symbols;
    int64_t count;
  };
  struct HeapEntry {
    int64_t count;
    uint64_t pair;
  };
  // Orders the heap: the higher count first; between equal counts, the pair whose (left, right)
  // byte strings come first. A total order on distinct pairs, so the result never depends on
  // the order entries were pushed in.
  struct HeapOrder {
    const std::vector<std::string>* tokens;
    bool operator()(const HeapEntry& a, const HeapEntry& b) const {  // a below b
      if (a.count != b.count) return a.count < b.count;
      const std::string& al = (*tokens)[a.pair >> 32];
      const std::string& bl = (*tokens)[b.pair >> 32];
      if (al != bl) return bl < al;
      return (*tokens)[uint32_t(b.pair)] < (*tokens)[uint32_t(a.pair)];
    }
  };

  int32_t byte_id(unsigned char b) const { return first_byte_id_ + b; }

  int32_t add_token(std::string bytes) {
    vocab_.tokens.push_back(std::move(bytes));
    vocab_.kinds.push_back(TokenKind::ordinary);
    return int32_t(vocab_.tokens.size() - 1);
  }

  void note_word(uint64_t key, int32_t w) {
    auto& list = words_of_pair_[key];
    if (list.empty() || list.back() != w) list.push_back(w);
  }

  void apply(uint64_t key);

  Vocabulary vocab_;
  const int32_t first_byte_id_;                       // the bytes follow the special tokens
  std::vector<Word> words_;                           // the distinct pieces
  std::unordered_map<uint64_t, int64_t> pair_count_;  // occurrences, weighted by piece count
  // The words that hold a pair (or once did: entries are not removed when a pair disappears).
  std::unordered_map<uint64_t, std::vector<int32_t>> words_of_pair_;
  std::priority_queue<HeapEntry, std::vector<HeapEntry>, HeapOrder> heap_;
  std::unordered_map<uint64_t, int64_t> delta_;  // scratch: count changes of one merge
};

// Merges every occurrence of the pair in every word that holds it, left to right within a word
// (so "a a a" under (a, a) becomes "aa a"), and updates the counts of the pairs around each.
// The merged token is always new: no token ever spans the edge of a place where a string S
// becomes one token, so S is split there exactly as S alone would be, and only one merge can
// make S.
void MergeLearner::apply(uint64_t key) {
  const int32_t a = int32_t(key >> 32), b = int32_t(uint32_t(key));
  const int32_t x = add_token(vocab_.tokens[size_t(a)] + vocab_.tokens[size_t(b)]);
  vocab_.merges.push_back({a, b, x});
  std::vector<int32_t> holders = std::move(words_of_pair_[key]);
  words_of_pair_.erase(key);
  std::sort(holders.begin(), holders.end());
  holders.erase(std::unique(holders.begin(), holders.end()), holders.end());
  delta_.clear();
  for (const int32_t w : holders) {
    auto& s = words_[size_t(w)].symbols;
    const int64_t c = words_[size_t(w)].count;
    auto change = [&](int32_t left, int32_t right, int64_t d) {
      const uint64_t k = Tokenizer::Impl::pair_key(left, right);
      delta_[k] += d;
      if (d > 0) note_word(k, w);
    };
    // In place: `out` never passes `i`, so s[i..] is still the unmerged word.
    size_t out = 0;
    for (size_t i = 0; i < s.size();) {
      if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
        if (out > 0) change(s[out - 1], a, -c), change(s[out - 1], x, c);
        if (i + 2 < s.size()) change(b, s[i + 2], -c), change(x, s[i + 2], c);
        change(a, b, -c);
        s[out++] = x;
        i += 2;
      } else {
        s[out++] = s[i++];
      }
    }
    s.resize(out);
  }
  for (const auto& [k, d] : delta_) {
    if (d == 0) continue;
    int64_t& count = pair_count_[k];
    count += d;
    if (d > 0) heap_.push({count, k});
    if (count == 0) pair_count_.erase(k);
  }
}

}  // namespace

Tokenizer train_bpe(std::span<const std::string_view> documents, const BpeTrainOptions& options,
                    std::ostream* progress) {
  check_specials(options);
  const int threads = options.threads > 0 ? options.threads
                                          : int(std::max(1u, std::thread::hardware_concurrency()));
  const auto start = Clock::now();
  const auto pieces = count_pieces(documents, threads);
  if (progress) {
    int64_t total = 0;
    for (const auto& p : pieces) total += p.second;
    *progress << "counted " << total << " pieces (" << pieces.size() << " distinct) in "
              << seconds_since(start) << " s on " << threads << " threads" << std::endl;
  }

  const auto learn_start = Clock::now();
  MergeLearner learner(pieces, options.specials);
  auto last_report = Clock::now();
  bool exhausted = false;
  while (learner.vocab_size() < options.vocab_size) {
    if (!learner.learn_one()) {
      exhausted = true;
      break;
    }
    if (progress && seconds_since(last_report) >= 1.0) {
      last_report = Clock::now();
      *progress << "merges: " << learner.merges() << ", vocabulary " << learner.vocab_size() << "/"
                << options.vocab_size << " (" << int64_t(double(learner.merges()) / seconds_since(learn_start))
                << " merges/s)" << std::endl;
    }
  }
  if (progress) {
    if (exhausted) {
      *progress << "stopped early: no pair left to merge after " << learner.merges()
                << " merges; the vocabulary has " << learner.vocab_size() << " of the "
                << options.vocab_size << " ids asked for" << std::endl;
    }
    *progress << "learned " << learner.merges() << " merges in " << seconds_since(learn_start)
              << " s (" << seconds_since(start) << " s in all)" << std::endl;
  }
  return Tokenizer(std::make_unique<Tokenizer::Impl>(learner.take_vocabulary()));
}

}  // namespace hymba
