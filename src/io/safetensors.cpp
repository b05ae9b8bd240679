#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>

#include "core/error.h"
#include "core/json.h"

namespace hymba {

// The data area is the tensors' raw bytes as they lie in memory.
static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

namespace {

// The reference reader refuses larger headers (safetensors' MAX_HEADER_SIZE); a 1.5B model's
// header is about 70 kB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// Values converted per write: bounds the conversion buffer, not the tensor size.
constexpr int64_t kChunk = int64_t(1) << 20;

}  // namespace

const char* st_dtype_name(StDtype d) { return d == StDtype::f32 ? "F32" : "BF16"; }

int64_t st_dtype_size(StDtype d) { return d == StDtype::f32 ? 4 : 2; }

std::string st_shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

uint16_t float_to_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
  // Adding 0x7FFF rounds the dropped half down below 0x8000 and up above it; the kept part's
  // lowest bit breaks the tie towards even. A carry out of the mantissa bumps the exponent,
  // which is exactly right (and gives infinity past the largest finite bf16).
  return uint16_t((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

float bf16_to_float(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }

int64_t StTensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

StHeader safetensors_header(const std::vector<std::pair<std::string, std::vector<int64_t>>>& tensors,
                            StDtype dtype) {
  StHeader h;
  for (const auto& [name, shape] : tensors) h.tensors.push_back({name, dtype, shape, 0, 0});
  // The reference writer orders the data by name (byte-wise) within one dtype.
  std::sort(h.tensors.begin(), h.tensors.end(),
            [](const StTensorInfo& a, const StTensorInfo& b) { return a.name < b.name; });
  h.json = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t offset = 0;
  for (size_t i = 0; i < h.tensors.size(); ++i) {
    StTensorInfo& t = h.tensors[i];
    if (i > 0 && t.name == h.tensors[i - 1].name) fail("safetensors: tensor ", t.name, " given twice");
    t.begin = offset;
    t.end = offset += uint64_t(t.numel() * st_dtype_size(dtype));
    h.json += ',';
    append_json_string(h.json, t.name);
    h.json += detail::concat(":{\"dtype\":\"", st_dtype_name(dtype), "\",\"shape\":", st_shape_text(t.shape),
                             ",\"data_offsets\":[", t.begin, ",", t.end, "]}");
  }
  h.json += '}';
  h.json.append((8 - h.json.size() % 8) % 8, ' ');
  return h;
}

void write_safetensors(const std::string& path, const std::vector<StTensorData>& tensors, StDtype dtype) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> specs;
  for (const StTensorData& t : tensors) specs.emplace_back(t.name, t.shape);
  const StHeader header = safetensors_header(specs, dtype);

  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail(tmp, ": cannot open for writing (", std::strerror(errno), ")");
    const uint64_t n = header.json.size();
    f.write(reinterpret_cast<const char*>(&n), sizeof n);
    f << header.json;
    std::map<std::string, const float*> data;
    for (const StTensorData& t : tensors) data[t.name] = t.data;
    std::vector<uint16_t> bf16;
    for (const StTensorInfo& info : header.tensors) {
      const float* values = data.at(info.name);
      const int64_t numel = info.numel();
      HYMBA_ASSERT(values != nullptr || numel == 0);
      if (dtype == StDtype::f32) {
        f.write(reinterpret_cast<const char*>(values), std::streamsize(numel * 4));
        continue;
      }
      for (int64_t i = 0; i < numel; i += kChunk) {
        const int64_t len = std::min(kChunk, numel - i);
        bf16.resize(size_t(len));
        for (int64_t j = 0; j < len; ++j) bf16[size_t(j)] = float_to_bf16(values[i + j]);
        f.write(reinterpret_cast<const char*>(bf16.data()), std::streamsize(len * 2));
      }
    }
    f.flush();
    if (!f) fail(tmp, ": cannot write (", std::strerror(errno), ")");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(path, ": cannot rename ", tmp, " into place (", ec.message(), ")");
}

// ---- reading ------------------------------------------------------------------------------------

namespace {

// A non-negative integer that fits the file's 64-bit offsets.
uint64_t read_size(const JsonValue& v, const std::string& what) {
  if (!v.is_integer() || v.as_int() < 0) fail(what, " must be a non-negative integer (", v.where(), ")");
  return uint64_t(v.as_int());
}

StTensorInfo read_entry(const std::string& name, const JsonValue& v) {
  const std::string where = "tensor " + name;
  if (v.type() != JsonValue::Type::object) fail(where, ": expected an object (", v.where(), ")");
  for (const auto& [key, value] : v.as_object()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") fail(where, ": unknown key \"", key, "\"");
  }
  const JsonValue* dtype = v.find("dtype");
  const JsonValue* shape = v.find("shape");
  const JsonValue* offsets = v.find("data_offsets");
  if (!dtype || !shape || !offsets) fail(where, ": needs dtype, shape and data_offsets (", v.where(), ")");

  StTensorInfo t;
  t.name = name;
  if (dtype->type() != JsonValue::Type::string) {
    fail(where, ": dtype must be a string (", dtype->where(), ")");
  }
  if (dtype->as_string() == "F32") t.dtype = StDtype::f32;
  else if (dtype->as_string() == "BF16") t.dtype = StDtype::bf16;
  else fail(where, ": dtype ", dtype->as_string(), " is not supported (F32 or BF16)");

  if (shape->type() != JsonValue::Type::array) fail(where, ": shape must be a list (", shape->where(), ")");
  // Sizes are checked for overflow here, so numel() and the byte count below are exact.
  uint64_t numel = 1;
  for (const JsonValue& d : shape->as_array()) {
    const uint64_t dim = read_size(d, where + ": a shape dimension");
    if (dim != 0 && numel > uint64_t(std::numeric_limits<int64_t>::max()) / 8 / dim)
      fail(where, ": shape is too large");
    numel *= dim;
    t.shape.push_back(int64_t(dim));
  }

  if (offsets->type() != JsonValue::Type::array || offsets->as_array().size() != 2)
    fail(where, ": data_offsets must be [begin, end] (", offsets->where(), ")");
  t.begin = read_size(offsets->as_array()[0], where + ": data_offsets");
  t.end = read_size(offsets->as_array()[1], where + ": data_offsets");
  if (t.end < t.begin) fail(where, ": data_offsets [", t.begin, ", ", t.end, "] end before they begin");
  const uint64_t want = numel * uint64_t(st_dtype_size(t.dtype));
  if (t.end - t.begin != want) {
    fail(where, ": data_offsets [", t.begin, ", ", t.end, "] hold ", t.end - t.begin, " bytes, but shape ",
         st_shape_text(t.shape), " in ", st_dtype_name(t.dtype), " needs ", want);
  }
  return t;
}

}  // namespace

SafetensorsReader::SafetensorsReader(std::string path) : path_(std::move(path)) {
  std::error_code ec;
  const uint64_t file_size = std::filesystem::file_size(path_, ec);
  if (ec) fail(path_, ": cannot read (", ec.message(), ")");
  file_.open(path_, std::ios::binary);
  if (!file_) fail(path_, ": cannot open (", std::strerror(errno), ")");
  if (file_size < 8) fail(path_, ": file of ", file_size, " bytes is too short for the 8-byte header length");

  uint64_t n = 0;
  file_.read(reinterpret_cast<char*>(&n), sizeof n);
  if (n > kMaxHeaderBytes) fail(path_, ": header length ", n, " is larger than the limit ", kMaxHeaderBytes);
  if (n > file_size - 8) {
    fail(path_, ": header length ", n, " runs past the end of the file (", file_size, " bytes)");
  }
  std::string text(n, '\0');
  file_.read(text.data(), std::streamsize(n));
  if (!file_) fail(path_, ": cannot read the header (", std::strerror(errno), ")");
  data_start_ = 8 + n;
  // Error positions count from the start of the file.
  const JsonValue header = parse_json(text, {path_, 1, 8});
  try {
    read_header(header);
    check_offsets(file_size - data_start_);
  } catch (const Error& e) {
    fail(path_, ": ", e.what());
  }
}

void SafetensorsReader::read_header(const JsonValue& header) {
  if (header.type() != JsonValue::Type::object) fail("the header must be a JSON object");
  for (const auto& [name, value] : header.as_object()) {
    if (name != "__metadata__") {
      tensors_.push_back(read_entry(name, value));
      continue;
    }
    if (value.type() != JsonValue::Type::object) fail("__metadata__ must be an object (", value.where(), ")");
    for (const auto& [key, v] : value.as_object()) {
      if (v.type() != JsonValue::Type::string) {
        fail("__metadata__: ", key, " must be a string (", v.where(), ")");
      }
      metadata_.emplace_back(key, v.as_string());
    }
  }
}

// The tensors must tile the data area: sorted by offset, each starts where the one before ended,
// and the last ends at the end of the file. (Equal begins sort by end, so an empty tensor next
// to another is still in order.)
void SafetensorsReader::check_offsets(uint64_t data_size) {
  std::sort(tensors_.begin(), tensors_.end(), [](const StTensorInfo& a, const StTensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expect = 0;
  const StTensorInfo* previous = nullptr;
  for (const StTensorInfo& t : tensors_) {
    if (t.begin < expect) {
      fail("tensor ", t.name, ": data_offsets [", t.begin, ", ", t.end, "] overlap tensor ", previous->name,
           " [", previous->begin, ", ", previous->end, "]");
    }
    if (t.begin > expect) {
      fail("tensor ", t.name, ": data_offsets [", t.begin, ", ", t.end, "] leave a gap after data byte ",
           expect);
    }
    expect = t.end;
    previous = &t;
  }
  if (expect != data_size) {
    fail("the tensors end at data byte ", expect, " but the data area holds ", data_size,
         expect > data_size ? " bytes (truncated file)" : " bytes (trailing bytes)");
  }
}

const StTensorInfo* SafetensorsReader::find(std::string_view name) const {
  for (const StTensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

void SafetensorsReader::read(const StTensorInfo& t, float* out) {
  const int64_t numel = t.numel();
  file_.clear();
  file_.seekg(std::streamoff(data_start_ + t.begin));
  if (t.dtype == StDtype::f32) {
    file_.read(reinterpret_cast<char*>(out), std::streamsize(numel * 4));
  } else {
    std::vector<uint16_t> bf16;
    for (int64_t i = 0; i < numel && file_; i += kChunk) {
      const int64_t len = std::min(kChunk, numel - i);
      bf16.resize(size_t(len));
      file_.read(reinterpret_cast<char*>(bf16.data()), std::streamsize(len * 2));
      for (int64_t j = 0; j < len; ++j) out[i + j] = bf16_to_float(bf16[size_t(j)]);
    }
  }
  if (!file_) {
    fail(path_, ": tensor ", t.name, ": cannot read bytes [", t.begin, ", ", t.end, ") of the data area");
  }
}

}  // namespace hymba
