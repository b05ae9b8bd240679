#include "data/byte_dataset.h"

#include "core/error.h"
#include "core/rng.h"
#include "data/text_file.h"

namespace hymba {

ByteDataset::ByteDataset(const std::string& path) : path_(path), bytes_(read_text_file(path)) {}

void ByteDataset::copy_row(int32_t* ids, int32_t* targets, int64_t T, int64_t offset) const {
  const auto* b = reinterpret_cast<const unsigned char*>(bytes_.data()) + offset;
  for (int64_t t = 0; t < T; ++t) {
    ids[t] = b[t];
    targets[t] = b[t + 1];
  }
}

void ByteDataset::training_batch(int32_t* ids, int32_t* targets, int64_t B, int64_t T,
                                 uint64_t seed, uint64_t batch_index) const {
  const int64_t starts = size() - T;  // a row needs T + 1 bytes
  if (starts < 1) fail(path_, ": ", size(), " bytes is too short for rows of ", T + 1, " bytes");
  static const uint64_t stream = hash_name("byte-dataset/training-rows");
  for (int64_t r = 0; r < B; ++r) {
    const double u = uniform01(seed, stream, batch_index * uint64_t(B) + uint64_t(r));
    copy_row(ids + r * T, targets + r * T, T, static_cast<int64_t>(u * double(starts)));
  }
}

void ByteDataset::eval_batch(int32_t* ids, int32_t* targets, int64_t B, int64_t T, int64_t first,
                             int64_t count) const {
  const int64_t starts = size() - T;
  if (starts < 1) fail(path_, ": ", size(), " bytes is too short for rows of ", T + 1, " bytes");
  const int64_t stride = starts / count > 0 ? starts / count : 1;
  for (int64_t r = 0; r < B; ++r) {
    copy_row(ids + r * T, targets + r * T, T, ((first + r) * stride) % starts);
  }
}

}  // namespace hymba
