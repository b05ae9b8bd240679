#include "data/text_file.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace hymba {

std::string read_text_file(const std::string& path) {
  // gzopen reads plain files transparently, so one path serves both.
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail(path, ": cannot open (", std::strerror(errno), ")");
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      const std::string what = gzerror(f, &code);
      const size_t done = text.size();
      gzclose(f);
      fail(path, ": damaged compressed data after ", done, " decompressed bytes (", what, ")");
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  // A gzip stream cut short reads as a clean end of file; gzclose reports it.
  const int rc = gzclose(f);
  if (rc != Z_OK) fail(path, ": truncated or damaged compressed data after ", text.size(), " bytes");
  return text;
}

}  // namespace hymba
