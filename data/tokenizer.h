// Byte-level BPE tokenizer in GPT-2's two-file format (encoder.json + vocab.bpe).
//
// Encoding: GPT-2 pre-tokenization (its regex, with Unicode letter/number classes), each piece
// mapped byte by byte to GPT-2's printable byte alphabet, then BPE merges by rank. Any byte string
// round-trips, invalid UTF-8 included (bytes that are not valid UTF-8 pre-tokenize as
// "other" characters).
//
// Special tokens are entries of encoder.json that are neither a single byte nor produced by a
// merge (GPT-2: <|endoftext|> = 50256). Text is always encoded as ordinary text: the string
// "<|endoftext|>" inside a document is not the special token. Documents are separated by eot_id().
//
// Tokenizers this framework trains lay out their ids as <|pad|> = 0, <|bos|> = 1,
// <|endoftext|> = 2 (the model configs' pad/bos/eos ids), then the 256 bytes, then the merges.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace hymba {

class Tokenizer {
 public:
  // Reads DIR/encoder.json and DIR/vocab.bpe. Errors name the file and the offending entry.
  static Tokenizer load(const std::string& dir);

  // Writes DIR/encoder.json and DIR/vocab.bpe (creating DIR), each through a temporary name.
  void save(const std::string& dir) const;

  // Appends the ids of `text` to `out`. Thread-safe (const, no shared mutable state).
  void encode(std::string_view text, std::vector<int32_t>& out) const;
  std::vector<int32_t> encode(std::string_view text) const;

  // The bytes of `ids` (special tokens give their names). An id outside the vocabulary is an
  // error naming its position.
  std::string decode(std::span<const int32_t> ids) const;

  int64_t vocab_size() const;  // largest id + 1
  int32_t eot_id() const;      // <|endoftext|>, or −1 if the vocabulary has none
  int32_t pad_id() const;      // <|pad|>, or −1
  // A hash of the whole vocabulary and merge list, as 16 hex digits: shards record it, and the
  // trainer refuses shards made with another tokenizer.
  const std::string& identity() const;

  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend Tokenizer train_bpe(std::span<const std::string_view>, const struct BpeTrainOptions&,
                             std::ostream*);
};

struct BpeTrainOptions {
  int64_t vocab_size = 32001;  // total ids: specials + 256 bytes + merges
  int threads = 0;             // 0 = all cores
  std::vector<std::string> specials = {"<|pad|>", "<|bos|>", "<|endoftext|>"};
};

// Learns merges from `documents` (GPT-2 pre-tokenization first, so merges never cross pieces).
// The result depends only on the documents and the options' vocab_size and specials, not on the
// thread count: ties between equally frequent pairs break by the pair's byte strings. Progress
// (pieces counted, merges learned, rate) goes to `progress` when it is not null.
Tokenizer train_bpe(std::span<const std::string_view> documents, const BpeTrainOptions& options,
                    std::ostream* progress);

}  // namespace hymba
