// Training rows taken straight from the bytes of a text file (vocab 256): the corpus format
// until the tokenizer and HDF5 shards exist (data pipeline issue).
//
// A row is T + 1 consecutive bytes; ids = row[0:T] and targets = row[1:T+1], which gives the
// same loss as the official model fed the whole row as input_ids and labels (HYMBA_SPEC §2.9).
#pragma once

#include <cstdint>
#include <string>

namespace hymba {

class ByteDataset {
 public:
  explicit ByteDataset(const std::string& path);

  const std::string& path() const { return path_; }
  int64_t size() const { return static_cast<int64_t>(bytes_.size()); }

  // Training batch number `batch_index`: each row starts at an offset drawn from
  // (seed, batch_index, row), so any batch can be regenerated on its own (exact resume).
  // ids, targets [B, T].
  void training_batch(int32_t* ids, int32_t* targets, int64_t B, int64_t T, uint64_t seed,
                      uint64_t batch_index) const;

  // Evaluation rows: `count` rows spread evenly over the file, row j at offset j·stride.
  // Fills rows [first, first + B) of that fixed set.
  void eval_batch(int32_t* ids, int32_t* targets, int64_t B, int64_t T, int64_t first,
                  int64_t count) const;

 private:
  void copy_row(int32_t* ids, int32_t* targets, int64_t T, int64_t offset) const;

  std::string path_;
  std::string bytes_;
};

}  // namespace hymba
