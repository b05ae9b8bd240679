// The safetensors format (huggingface/safetensors), written byte for byte as its reference
// implementation writes it:
//
//   8 bytes   N: the header length, little-endian uint64
//   N bytes   the header, compact JSON:
//               {"__metadata__":{"format":"pt"},
//                NAME:{"dtype":"BF16","shape":[8000,1600],"data_offsets":[BEGIN,END]}, ...}
//             padded with spaces to a multiple of 8, so the data area starts 8-byte aligned
//   the data  every tensor's raw little-endian bytes (row-major), in name order, without gaps;
//             BEGIN/END are byte offsets into the data area
//
// Only the two float dtypes a model is exported in are supported: F32 and BF16.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hymba {

class JsonValue;

enum class StDtype { f32, bf16 };
const char* st_dtype_name(StDtype d);  // "F32", "BF16": the header's spelling
int64_t st_dtype_size(StDtype d);      // bytes per element
std::string st_shape_text(const std::vector<int64_t>& shape);  // "[8000,1600]", as the header has it

// fp32 -> bf16 by round-to-nearest-even, as torch's .to(torch.bfloat16) does: values beyond the
// largest bf16 round to infinity, subnormals round like any other value, and every NaN becomes
// the canonical quiet NaN 0x7FC0 (rounding could otherwise carry a NaN into infinity).
uint16_t float_to_bf16(float x);
float bf16_to_float(uint16_t b);  // exact

// One header entry: where a tensor's bytes lie in the data area.
struct StTensorInfo {
  std::string name;
  StDtype dtype = StDtype::f32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets into the data area
  int64_t numel() const;
};

// A tensor to write: fp32 values, converted to the file's dtype on the way out.
struct StTensorData {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;  // numel values, row-major
};

// The header that write_safetensors writes for tensors of these names and shapes in `dtype`
// (JSON padded with spaces), and each tensor's entry in data order. Needs no tensor data, so
// the layout of a large model can be checked without allocating it. Names must be unique.
struct StHeader {
  std::string json;
  std::vector<StTensorInfo> tensors;
};
StHeader safetensors_header(const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors,
                            StDtype dtype);

// Writes `path` through path + ".tmp" and a rename, so an interrupted export never leaves a
// partial file under the final name. Errors name the file.
void write_safetensors(const std::string& path, const std::vector<StTensorData>& tensors, StDtype dtype);

// An opened safetensors file whose header has been checked against the file: a sane header
// length, valid JSON, known dtypes, offsets that tile the data area exactly (contiguous, no
// overlap, ending at the end of the file) and byte sizes equal to product(shape) · dtype size.
// Any failure is an Error naming the file and the tensor or offset at fault.
class SafetensorsReader {
 public:
  explicit SafetensorsReader(std::string path);

  const std::string& path() const { return path_; }
  const std::vector<StTensorInfo>& tensors() const { return tensors_; }  // in data order
  const StTensorInfo* find(std::string_view name) const;                  // null if absent
  // The "__metadata__" entries (string to string), in file order.
  const std::vector<std::pair<std::string, std::string>>& metadata() const { return metadata_; }

  // Reads tensor `t` (one of tensors()) as fp32 into out[0, t.numel()).
  void read(const StTensorInfo& t, float* out);

 private:
  void read_header(const JsonValue& header);
  void check_offsets(uint64_t data_size);

  std::string path_;
  std::ifstream file_;
  uint64_t data_start_ = 0;  // 8 + N
  std::vector<StTensorInfo> tensors_;
  std::vector<std::pair<std::string, std::string>> metadata_;
};

}  // namespace hymba
