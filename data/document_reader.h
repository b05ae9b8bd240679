// Documents from a list of inputs, in a fixed order, for data preparation.
//
// An input is a file (plain, gzip or xz), a folder (every regular file below it, in sorted path
// order) or "-" (standard input). Text inputs: a line holding only <|endoftext|> separates
// documents (the bundled corpus-en convention), otherwise the whole file is one document. JSONL
// inputs: one JSON object per line, the document is its string field `jsonl_field`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hymba {

enum class InputFormat {
  automatic,  // jsonl for names ending .jsonl / .jsonl.gz / .jsonl.xz, else text
  text,
  jsonl,
};

class ByteStream;

class DocumentReader {
 public:
  DocumentReader(const std::vector<std::string>& inputs, InputFormat format,
                 std::string jsonl_field = "text");
  ~DocumentReader();

  // The next non-empty document into `doc`; false when every input is exhausted. A malformed
  // JSONL line is an Error naming the file and the line number.
  bool next(std::string& doc);

  // Progress: bytes read from the input files so far, and their total size (stdin counts 0).
  uint64_t bytes_read() const;
  uint64_t bytes_total() const { return bytes_total_; }

 private:
  bool next_line(std::string& line);  // from the current file; false at its end
  void start_line(size_t length_with_newline);  // bookkeeping for error positions
  bool open_next_file();

  std::vector<std::string> files_;
  InputFormat format_;
  std::string field_;
  size_t next_file_ = 0;
  std::unique_ptr<ByteStream> in_;
  bool jsonl_ = false;
  int64_t line_number_ = 0;       // of the line last read, 1-based
  int64_t line_offset_ = 0;       // its decoded byte offset in the file
  int64_t next_line_offset_ = 0;
  std::string buf_;  // decoded bytes not yet split into lines
  size_t buf_pos_ = 0;
  bool eof_ = true;
  uint64_t bytes_done_ = 0;  // raw bytes of the files already finished
  uint64_t bytes_total_ = 0;
};

// The files an input list names, in reading order (folders expanded, sorted). A missing input
// is an Error naming it.
std::vector<std::string> expand_inputs(const std::vector<std::string>& inputs);

}  // namespace hymba
