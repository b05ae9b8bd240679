// Token shards: one HDF5 file per shard, the unit the data pipeline writes and the loader reads.
//
//   /tokens        uint16 (vocab_size <= 65536) or uint32, [token_count]: documents one after
//                  another, each followed by the tokenizer's end-of-text id
//   /doc_offsets   uint64, [doc_count + 1]: token index where each document starts; the last
//                  entry is token_count
//   attributes on /: format_version, vocab_size, tokenizer (identity hex), token_count,
//                  doc_count, split ("train" | "val"), source_doc_begin, source_doc_end (which
//                  documents of the prepared input stream it holds, for resuming a prepare),
//                  checksum (64-bit FNV-1a of the token values, as 16 hex digits)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hymba {

inline constexpr int64_t kShardFormatVersion = 1;

struct ShardInfo {
  int64_t format_version = kShardFormatVersion;
  int64_t vocab_size = 0;
  std::string tokenizer;  // Tokenizer::identity()
  int64_t token_count = 0;
  int64_t doc_count = 0;
  std::string split;      // "train" or "val"
  int64_t source_doc_begin = 0, source_doc_end = 0;
};

// Writes a shard to `path` + ".tmp", flushes and closes it, then renames it to `path`: a crash
// never leaves a partial file under the final name. token_count, doc_count and the checksum are
// taken from the data; the other fields from `info`.
void write_shard(const std::string& path, const std::vector<int32_t>& tokens,
                 const std::vector<int64_t>& doc_offsets, const ShardInfo& info);

// Opens and checks a shard: a valid HDF5 file, the expected datasets and attributes, the format
// version, sizes that agree, and the checksum (read once, at open). Anything wrong is an Error
// naming the file and what is wrong.
class ShardReader {
 public:
  explicit ShardReader(const std::string& path);
  ~ShardReader();
  ShardReader(ShardReader&&) noexcept;
  ShardReader& operator=(ShardReader&&) noexcept;

  const std::string& path() const { return path_; }
  const ShardInfo& info() const { return info_; }
  const std::vector<int64_t>& doc_offsets() const { return doc_offsets_; }  // [doc_count + 1]

  // tokens [offset, offset + count) into out; a range outside the shard is an error.
  void read_tokens(int64_t offset, int64_t count, int32_t* out) const;

 private:
  std::string path_;
  ShardInfo info_;
  std::vector<int64_t> doc_offsets_;
  int64_t file_ = -1;  // HDF5 file id
  int64_t tokens_ = -1;  // HDF5 dataset id
};

}  // namespace hymba
