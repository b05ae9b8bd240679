#include "data/byte_stream.h"

#include <zlib.h>
#ifdef HYMBA_HAVE_LZMA
#include <lzma.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace hymba {

namespace {

// The undecoded bytes of the file, counted for progress reports.
class RawFile {
 public:
  explicit RawFile(const std::string& path) : path_(path) {
    f_ = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
    if (!f_) fail(path, ": cannot open (", std::strerror(errno), ")");
  }
  ~RawFile() {
    if (f_ != stdin) std::fclose(f_);
  }
  RawFile(const RawFile&) = delete;
  size_t read(unsigned char* buf, size_t n) {
    const size_t got = std::fread(buf, 1, n, f_);
    if (got < n && std::ferror(f_)) fail(path_, ": read error after ", consumed_, " bytes");
    consumed_ += got;
    return got;
  }
  uint64_t consumed() const { return consumed_; }

 private:
  std::string path_;
  FILE* f_;
  uint64_t consumed_ = 0;
};

constexpr size_t kChunk = 1 << 16;

}  // namespace

// A decoder owns the file. `head` holds the bytes already read to recognise the format; they are
// handed out before anything else is read.
struct ByteStream::Decoder {
  Decoder(std::string path, std::unique_ptr<RawFile> f, std::vector<unsigned char> head)
      : path(std::move(path)), file(std::move(f)), head(std::move(head)) {}
  virtual ~Decoder() = default;
  virtual size_t read(char* buf, size_t n) = 0;

  // Next undecoded bytes into buf.
  size_t raw(unsigned char* buf, size_t n) {
    if (head_used < head.size()) {
      const size_t k = std::min(n, head.size() - head_used);
      std::memcpy(buf, head.data() + head_used, k);
      head_used += k;
      return k;
    }
    return file->read(buf, n);
  }

  std::string path;
  std::unique_ptr<RawFile> file;
  std::vector<unsigned char> head;
  size_t head_used = 0;
  uint64_t produced = 0;  // decoded bytes handed out, for error messages
};

namespace {

struct PlainDecoder : ByteStream::Decoder {
  using Decoder::Decoder;
  size_t read(char* buf, size_t n) override {
    size_t got = 0;
    while (got < n) {
      const size_t k = raw(reinterpret_cast<unsigned char*>(buf) + got, n - got);
      if (k == 0) break;
      got += k;
    }
    produced += got;
    return got;
  }
};

struct GzipDecoder : ByteStream::Decoder {
  GzipDecoder(std::string path, std::unique_ptr<RawFile> f, std::vector<unsigned char> head)
      : Decoder(std::move(path), std::move(f), std::move(head)), in(kChunk) {
    // 15 + 32: any window size, gzip or zlib header detected automatically.
    if (inflateInit2(&z, 15 + 32) != Z_OK) fail(this->path, ": cannot start the gzip decoder");
  }
  ~GzipDecoder() override { inflateEnd(&z); }

  size_t read(char* buf, size_t n) override {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = static_cast<uInt>(n);
    while (z.avail_out > 0 && !finished) {
      if (z.avail_in == 0 && !refill()) {
        fail(path, ": truncated gzip data after ", produced + (n - z.avail_out), " decompressed bytes");
      }
      const int rc = inflate(&z, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        // Concatenated gzip members (as `cat a.gz b.gz` makes) continue the stream.
        if (z.avail_in > 0 || refill()) {
          inflateReset(&z);
        } else {
          finished = true;
        }
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        fail(path, ": damaged gzip data after ", produced + (n - z.avail_out), " decompressed bytes (",
             z.msg ? z.msg : "inflate error", ")");
      }
    }
    const size_t got = n - z.avail_out;
    produced += got;
    return got;
  }

  bool refill() {
    z.avail_in = static_cast<uInt>(raw(in.data(), in.size()));
    z.next_in = in.data();
    return z.avail_in > 0;
  }

  z_stream z{};
  std::vector<unsigned char> in;
  bool finished = false;
};

#ifdef HYMBA_HAVE_LZMA
struct XzDecoder : ByteStream::Decoder {
  XzDecoder(std::string path, std::unique_ptr<RawFile> f, std::vector<unsigned char> head)
      : Decoder(std::move(path), std::move(f), std::move(head)), in(kChunk) {
    if (lzma_stream_decoder(&s, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
      fail(this->path, ": cannot start the xz decoder");
    }
  }
  ~XzDecoder() override { lzma_end(&s); }

  size_t read(char* buf, size_t n) override {
    s.next_out = reinterpret_cast<uint8_t*>(buf);
    s.avail_out = n;
    while (s.avail_out > 0 && !finished) {
      if (s.avail_in == 0 && !input_done) {
        s.avail_in = raw(in.data(), in.size());
        s.next_in = in.data();
        input_done = s.avail_in == 0;
      }
      const lzma_ret rc = lzma_code(&s, input_done ? LZMA_FINISH : LZMA_RUN);
      if (rc == LZMA_STREAM_END) {
        finished = true;
      } else if (rc != LZMA_OK) {
        fail(path, rc == LZMA_BUF_ERROR ? ": truncated xz data after " : ": damaged xz data after ",
             produced + (n - s.avail_out), " decompressed bytes (liblzma error ", int(rc), ")");
      }
    }
    const size_t got = n - s.avail_out;
    produced += got;
    return got;
  }

  lzma_stream s = LZMA_STREAM_INIT;
  std::vector<unsigned char> in;
  bool finished = false, input_done = false;
};

#endif  // HYMBA_HAVE_LZMA

}  // namespace

ByteStream::ByteStream(const std::string& path) : path_(path) {
  auto file = std::make_unique<RawFile>(path);
  std::vector<unsigned char> head(6);
  head.resize(file->read(head.data(), head.size()));
  const bool gzip = head.size() >= 2 && head[0] == 0x1f && head[1] == 0x8b;
  const bool xz = head.size() == 6 && std::memcmp(head.data(), "\xFD" "7zXZ\0", 6) == 0;
  if (gzip) {
    decoder_ = std::make_unique<GzipDecoder>(path, std::move(file), std::move(head));
  } else if (xz) {
#ifdef HYMBA_HAVE_LZMA
    decoder_ = std::make_unique<XzDecoder>(path, std::move(file), std::move(head));
#else
    fail(path, ": xz-compressed, but this build has no xz support (install liblzma-dev and rebuild)");
#endif
  } else {
    decoder_ = std::make_unique<PlainDecoder>(path, std::move(file), std::move(head));
  }
}

ByteStream::~ByteStream() = default;

size_t ByteStream::read(char* buf, size_t n) { return decoder_->read(buf, n); }

uint64_t ByteStream::raw_bytes_read() const { return decoder_->file->consumed(); }

}  // namespace hymba
