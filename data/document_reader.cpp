#include "data/document_reader.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "core/error.h"
#include "core/json.h"
#include "data/byte_stream.h"

namespace hymba {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const char* suffix) { return s.ends_with(suffix); }

bool looks_like_jsonl(const std::string& path) {
  return ends_with(path, ".jsonl") || ends_with(path, ".jsonl.gz") || ends_with(path, ".jsonl.xz");
}

constexpr const char* kSeparator = "<|endoftext|>";

}  // namespace

std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& in : inputs) {
    if (in == "-") {
      files.push_back(in);
    } else if (fs::is_directory(in)) {
      std::vector<std::string> found;
      for (const auto& e : fs::recursive_directory_iterator(in)) {
        if (e.is_regular_file()) found.push_back(e.path().string());
      }
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(in)) {
      files.push_back(in);
    } else {
      fail(in, ": no such file or folder");
    }
  }
  return files;
}

DocumentReader::DocumentReader(const std::vector<std::string>& inputs, InputFormat format,
                               std::string jsonl_field)
    : files_(expand_inputs(inputs)), format_(format), field_(std::move(jsonl_field)) {
  for (const std::string& f : files_) bytes_total_ += f == "-" ? 0 : fs::file_size(f);
}

DocumentReader::~DocumentReader() = default;

uint64_t DocumentReader::bytes_read() const { return bytes_done_ + (in_ ? in_->raw_bytes_read() : 0); }

bool DocumentReader::open_next_file() {
  if (in_) bytes_done_ += in_->raw_bytes_read();
  in_.reset();
  if (next_file_ == files_.size()) return false;
  const std::string& path = files_[next_file_++];
  in_ = std::make_unique<ByteStream>(path);
  jsonl_ = format_ == InputFormat::jsonl || (format_ == InputFormat::automatic && looks_like_jsonl(path));
  line_number_ = 0;
  line_offset_ = next_line_offset_ = 0;
  buf_.clear();
  buf_pos_ = 0;
  eof_ = false;
  return true;
}

void DocumentReader::start_line(size_t length_with_newline) {
  ++line_number_;
  line_offset_ = next_line_offset_;
  next_line_offset_ += static_cast<int64_t>(length_with_newline);
}

bool DocumentReader::next_line(std::string& line) {
  line.clear();
  for (;;) {
    const size_t nl = buf_.find('\n', buf_pos_);
    if (nl != std::string::npos) {
      line.append(buf_, buf_pos_, nl - buf_pos_);
      buf_pos_ = nl + 1;
      start_line(line.size() + 1);
      return true;
    }
    line.append(buf_, buf_pos_, std::string::npos);
    buf_.resize(1 << 20);
    const size_t n = eof_ ? 0 : in_->read(buf_.data(), buf_.size());
    buf_.resize(n);
    buf_pos_ = 0;
    if (n == 0) {
      eof_ = true;
      if (line.empty()) return false;
      start_line(line.size());
      return true;  // a last line without '\n'
    }
  }
}

bool DocumentReader::next(std::string& doc) {
  doc.clear();
  std::string line;
  for (;;) {
    if (!in_ || (eof_ && buf_pos_ >= buf_.size())) {
      // The current file is done: a text document still being gathered ends with it.
      if (!doc.empty()) return true;
      if (!open_next_file()) return false;
    }
    if (!next_line(line)) continue;
    if (jsonl_) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      // Errors from the parser already name the file, line and byte offset.
      std::optional<std::string> text =
          json_string_member(line, field_, JsonSource{in_->path(), line_number_, line_offset_});
      if (!text) fail(in_->path(), ": line ", line_number_, ": no \"", field_, "\" member");
      doc = std::move(*text);
      if (!doc.empty()) return true;
    } else if (line == kSeparator || line == std::string(kSeparator) + "\r") {
      if (!doc.empty()) {
        doc.pop_back();  // the newline before the separator line belongs to neither document
        return true;
      }
    } else {
      doc += line;
      doc += '\n';
    }
  }
}

}  // namespace hymba
