#include "data/text_file.h"

#include <vector>

#include "data/byte_stream.h"

namespace hymba {

std::string read_text_file(const std::string& path) {
  ByteStream in(path);
  std::string text;
  std::vector<char> buf(1 << 20);
  for (size_t n; (n = in.read(buf.data(), buf.size())) > 0;) text.append(buf.data(), n);
  return text;
}

}  // namespace hymba
