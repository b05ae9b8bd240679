// Reads a file, or standard input, as a stream of bytes, decompressing gzip and xz on the fly.
// The format is recognised from the first bytes (magic numbers), not from the name.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace hymba {

class ByteStream {
 public:
  // path "-" is standard input. Errors name the path.
  explicit ByteStream(const std::string& path);
  ~ByteStream();

  // Up to n decompressed bytes into buf; 0 at the end. A damaged or truncated compressed
  // stream is an Error naming the path and how many bytes had been produced.
  size_t read(char* buf, size_t n);

  const std::string& path() const { return path_; }
  uint64_t raw_bytes_read() const;  // bytes taken from the file so far (for progress)

  struct Decoder;

 private:
  std::string path_;
  std::unique_ptr<Decoder> decoder_;
};

}  // namespace hymba
