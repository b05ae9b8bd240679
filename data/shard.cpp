#include "data/shard.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "data/hdf5_lock.h"

namespace hymba {
namespace {

static_assert(std::is_same_v<hid_t, int64_t>, "shard.h stores HDF5 ids as int64_t");

// Tokens hashed per read while verifying a shard: 4 MiB of int32, so a shard is never held in
// memory whole.
constexpr int64_t kChecksumChunk = int64_t{1} << 20;


// 64-bit FNV-1a over the tokens as little-endian uint32 words (4 bytes each, low byte first),
// whatever the on-disk width, so the value only depends on the token values. Python:
// fnv1a(numpy.asarray(tokens, "<u4").tobytes()).
uint64_t fnv1a_tokens(uint64_t h, const int32_t* tokens, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const auto v = static_cast<uint32_t>(tokens[i]);
    for (int byte = 0; byte < 4; ++byte) h = (h ^ ((v >> (8 * byte)) & 0xFFu)) * 0x100000001B3ull;
  }
  return h;
}
constexpr uint64_t kFnvOffsetBasis = 0xCBF29CE484222325ull;

std::string hex16(uint64_t v) {
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(v));
  return s;
}

// The rules write_shard and ShardReader share.
void check_vocab_size(const std::string& path, int64_t vocab_size) {
  if (vocab_size < 1) fail(path, ": vocab_size is ", vocab_size, " (must be at least 1)");
  if (vocab_size > int64_t{std::numeric_limits<int32_t>::max()} + 1) {
    fail(path, ": vocab_size ", vocab_size, " does not fit int32 token ids");
  }
}

void check_split(const std::string& path, const std::string& split) {
  if (split != "train" && split != "val") {
    fail(path, ": split is '", split, "' (expected 'train' or 'val')");
  }
}

void check_doc_offsets(const std::string& path, const std::vector<int64_t>& offsets,
                       int64_t token_count) {
  if (offsets.empty()) {
    fail(path,
         ": doc_offsets is empty (it holds doc_count + 1 entries, the last being token_count)");
  }
  if (offsets.front() != 0) fail(path, ": doc_offsets starts at ", offsets.front(), ", not 0");
  for (size_t i = 1; i < offsets.size(); ++i) {
    if (offsets[i] < offsets[i - 1]) {
      fail(path, ": doc_offsets decreases at entry ", i, " (", offsets[i - 1], " then ", offsets[i],
           ")");
    }
  }
  if (offsets.back() != token_count) {
    fail(path, ": doc_offsets ends at ", offsets.back(), " but token_count is ", token_count);
  }
}

// ---- writing -------------------------------------------------------------------------------

void write_int_attribute(hid_t file, const char* name, int64_t value, const std::string& path) {
  H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  if (!space.ok()) fail(path, ": cannot create a dataspace for attribute ", name);
  H5Id attr(H5Acreate2(file, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
  if (!attr.ok()) fail(path, ": cannot create attribute ", name);
  if (H5Awrite(attr.get(), H5T_NATIVE_INT64, &value) < 0) {
    fail(path, ": cannot write attribute ", name);
  }
  if (!attr.close()) fail(path, ": cannot close attribute ", name);
}

// A fixed-length, NUL-terminated ASCII string (readable as str by h5py).
void write_string_attribute(hid_t file, const char* name, const std::string& value,
                            const std::string& path) {
  H5Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  if (!type.ok() || H5Tset_size(type.get(), value.size() + 1) < 0 ||
      H5Tset_strpad(type.get(), H5T_STR_NULLTERM) < 0) {
    fail(path, ": cannot make a string type for attribute ", name);
  }
  H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  if (!space.ok()) fail(path, ": cannot create a dataspace for attribute ", name);
  H5Id attr(H5Acreate2(file, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
  if (!attr.ok()) fail(path, ": cannot create attribute ", name);
  if (H5Awrite(attr.get(), type.get(), value.c_str()) < 0) {
    fail(path, ": cannot write attribute ", name);
  }
  if (!attr.close()) fail(path, ": cannot close attribute ", name);
}

// A 1-D dataset of `count` values converted by HDF5 from `mem_type` to `file_type`.
void write_dataset(hid_t file, const char* name, hid_t file_type, hid_t mem_type, const void* data,
                   int64_t count, const std::string& path) {
  const hsize_t dims = static_cast<hsize_t>(count);
  H5Id space(H5Screate_simple(1, &dims, nullptr), H5Sclose);
  if (!space.ok()) fail(path, ": cannot create a dataspace for /", name);
  H5Id set(
      H5Dcreate2(file, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose);
  if (!set.ok()) fail(path, ": cannot create dataset /", name);
  if (count > 0 && H5Dwrite(set.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    fail(path, ": cannot write dataset /", name);
  }
  if (!set.close()) fail(path, ": cannot close dataset /", name);
}

// The whole file, built in memory. Why not let HDF5 write to disk: HDF5 1.10 cannot recover from
// a write that fails (a full disk): the file's close fails too, and the library then crashes at
// process exit. In memory (the core driver, no backing store) nothing can fail for want of disk,
// and the image goes to disk through plain POSIX calls whose errors are ours to report.
struct FileImage {
  std::unique_ptr<char[]> bytes;
  size_t size = 0;
};

FileImage build_image(const std::string& tmp, const std::vector<int32_t>& tokens,
                      const std::vector<int64_t>& doc_offsets, const ShardInfo& info,
                      uint64_t checksum) {
  const bool narrow = info.vocab_size <= 65536;
  // One allocation for the data plus room for the metadata.
  const size_t estimate =
      tokens.size() * (narrow ? 2 : 4) + doc_offsets.size() * 8 + (size_t{1} << 16);
  Hdf5Lock lock;
  H5Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (!fapl.ok() || H5Pset_fapl_core(fapl.get(), estimate, false) < 0) {
    fail(tmp, ": cannot set up an in-memory HDF5 file");
  }
  H5Id file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  if (!file.ok()) fail(tmp, ": cannot create the HDF5 file");
  write_dataset(file.get(), "tokens", narrow ? H5T_STD_U16LE : H5T_STD_U32LE, H5T_NATIVE_INT32,
                tokens.data(), static_cast<int64_t>(tokens.size()), tmp);
  write_dataset(file.get(), "doc_offsets", H5T_STD_U64LE, H5T_NATIVE_INT64, doc_offsets.data(),
                static_cast<int64_t>(doc_offsets.size()), tmp);
  write_int_attribute(file.get(), "format_version", kShardFormatVersion, tmp);
  write_int_attribute(file.get(), "vocab_size", info.vocab_size, tmp);
  write_string_attribute(file.get(), "tokenizer", info.tokenizer, tmp);
  write_int_attribute(file.get(), "token_count", static_cast<int64_t>(tokens.size()), tmp);
  write_int_attribute(file.get(), "doc_count", static_cast<int64_t>(doc_offsets.size()) - 1, tmp);
  write_string_attribute(file.get(), "split", info.split, tmp);
  write_int_attribute(file.get(), "source_doc_begin", info.source_doc_begin, tmp);
  write_int_attribute(file.get(), "source_doc_end", info.source_doc_end, tmp);
  write_string_attribute(file.get(), "checksum", hex16(checksum), tmp);
  if (H5Fflush(file.get(), H5F_SCOPE_LOCAL) < 0) fail(tmp, ": cannot flush the HDF5 file");
  const ssize_t size = H5Fget_file_image(file.get(), nullptr, 0);
  if (size <= 0) fail(tmp, ": cannot take the HDF5 file's image");
  FileImage image{std::make_unique_for_overwrite<char[]>(static_cast<size_t>(size)),
                  static_cast<size_t>(size)};
  if (H5Fget_file_image(file.get(), image.bytes.get(), image.size) != size) {
    fail(tmp, ": cannot take the HDF5 file's image");
  }
  if (!file.close()) fail(tmp, ": cannot close the HDF5 file");
  return image;
}

// Writes the image to `tmp` and syncs it: the data must be on disk before the rename makes it
// visible under the final name.
void write_image(const std::string& tmp, const FileImage& image) {
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(tmp, ": cannot create: ", std::strerror(errno));
  for (size_t done = 0; done < image.size;) {
    const ssize_t n = ::write(fd, image.bytes.get() + done, image.size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      fail(tmp, ": cannot write (", done, " of ", image.size,
           " bytes written): ", std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail(tmp, ": cannot sync to disk: ", std::strerror(err));
  }
  if (::close(fd) != 0) fail(tmp, ": cannot close: ", std::strerror(errno));
}

// ---- reading -------------------------------------------------------------------------------

H5Id open_attribute(hid_t file, const char* name, const std::string& path) {
  const htri_t exists = H5Aexists(file, name);
  if (exists < 0) fail(path, ": cannot look up attribute ", name);
  if (exists == 0) fail(path, ": missing attribute ", name);
  H5Id attr(H5Aopen(file, name, H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) fail(path, ": cannot open attribute ", name);
  H5Id space(H5Aget_space(attr.get()), H5Sclose);
  if (!space.ok() || H5Sget_simple_extent_npoints(space.get()) != 1) {
    fail(path, ": attribute ", name, " is not a single value");
  }
  return H5Id(attr.release(), H5Aclose);
}

H5T_class_t type_class(hid_t attr, const char* name, const std::string& path) {
  H5Id type(H5Aget_type(attr), H5Tclose);
  if (!type.ok()) fail(path, ": cannot read the type of attribute ", name);
  const H5T_class_t c = H5Tget_class(type.get());
  if (c == H5T_NO_CLASS) fail(path, ": cannot read the type of attribute ", name);
  return c;
}

int64_t read_int_attribute(hid_t file, const char* name, const std::string& path) {
  H5Id attr = open_attribute(file, name, path);
  if (type_class(attr.get(), name, path) != H5T_INTEGER) {
    fail(path, ": attribute ", name, " is not an integer");
  }
  int64_t v = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_INT64, &v) < 0) fail(path, ": cannot read attribute ", name);
  return v;
}

// Fixed-length (as written here) or variable-length (as h5py writes a str) strings.
std::string read_string_attribute(hid_t file, const char* name, const std::string& path) {
  H5Id attr = open_attribute(file, name, path);
  if (type_class(attr.get(), name, path) != H5T_STRING) {
    fail(path, ": attribute ", name, " is not a string");
  }
  H5Id type(H5Aget_type(attr.get()), H5Tclose);
  if (!type.ok()) fail(path, ": cannot read the type of attribute ", name);
  const htri_t variable = H5Tis_variable_str(type.get());
  if (variable < 0) fail(path, ": cannot read the type of attribute ", name);
  if (variable) {
    char* s = nullptr;
    if (H5Aread(attr.get(), type.get(), &s) < 0) fail(path, ": cannot read attribute ", name);
    std::string value = s ? s : "";
    if (H5free_memory(s) < 0) fail(path, ": cannot free attribute ", name);
    return value;
  }
  const size_t size = H5Tget_size(type.get());
  if (size == 0) fail(path, ": cannot read the type of attribute ", name);
  std::string value(size, '\0');
  if (H5Aread(attr.get(), type.get(), value.data()) < 0) {
    fail(path, ": cannot read attribute ", name);
  }
  value.resize(std::min(value.find('\0'), size));
  return value;
}

// A 1-D integer dataset; returns it open with its element count.
H5Id open_dataset(hid_t file, const char* name, int64_t& count, const std::string& path) {
  const htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
  if (exists < 0) fail(path, ": cannot look up dataset /", name);
  if (exists == 0) fail(path, ": missing dataset /", name);
  H5Id set(H5Dopen2(file, name, H5P_DEFAULT), H5Dclose);
  if (!set.ok()) fail(path, ": cannot open dataset /", name);
  H5Id type(H5Dget_type(set.get()), H5Tclose);
  if (!type.ok() || H5Tget_class(type.get()) != H5T_INTEGER) {
    fail(path, ": dataset /", name, " is not integer");
  }
  H5Id space(H5Dget_space(set.get()), H5Sclose);
  if (!space.ok() || H5Sget_simple_extent_ndims(space.get()) != 1) {
    fail(path, ": dataset /", name, " is not 1-D");
  }
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n < 0) fail(path, ": cannot read the size of dataset /", name);
  count = n;
  return H5Id(set.release(), H5Dclose);
}

void close_ids(int64_t& file, int64_t& tokens) {
  if (file < 0 && tokens < 0) return;
  Hdf5Lock lock;
  // Read-only handles: a failed close loses nothing, and a destructor cannot report it.
  if (tokens >= 0) H5Dclose(std::exchange(tokens, -1));
  if (file >= 0) H5Fclose(std::exchange(file, -1));
}

}  // namespace

void write_shard(const std::string& path, const std::vector<int32_t>& tokens,
                 const std::vector<int64_t>& doc_offsets, const ShardInfo& info) {
  check_vocab_size(path, info.vocab_size);
  check_split(path, info.split);
  const auto token_count = static_cast<int64_t>(tokens.size());
  check_doc_offsets(path, doc_offsets, token_count);
  for (int64_t i = 0; i < token_count; ++i) {
    if (tokens[i] < 0 || tokens[i] >= info.vocab_size) {
      fail(path, ": token ", i, " is ", tokens[i], ", outside the vocabulary [0, ", info.vocab_size,
           ")");
    }
  }
  const uint64_t checksum = fnv1a_tokens(kFnvOffsetBasis, tokens.data(), token_count);

  const std::string tmp = path + ".tmp";
  try {
    write_image(tmp, build_image(tmp, tokens, doc_offsets, info, checksum));
  } catch (...) {
    std::error_code ignored;  // the write's own error is the one to report
    std::filesystem::remove(tmp, ignored);
    throw;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(tmp, ": cannot rename to ", path, ": ", ec.message());
}

ShardReader::ShardReader(const std::string& path) : path_(path) {
  if (!std::filesystem::exists(path)) fail(path, ": no such shard file");
  if (::access(path.c_str(), R_OK) != 0) fail(path, ": cannot read: ", std::strerror(errno));
  try {
    std::string checksum;
    {
      Hdf5Lock lock;
      // File locks where the file system has them; where it has none (some NFS and Lustre
      // mounts) the open still succeeds instead of failing as if the file were corrupt.
      H5Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
      if (!fapl.ok() || H5Pset_file_locking(fapl.get(), true, true) < 0) {
        fail(path, ": cannot set up HDF5 file access");
      }
      H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
      if (!file.ok()) fail(path, ": not a readable HDF5 shard (truncated or corrupt)");
      const hid_t f = file.get();
      // The version first: another version may lay the file out differently.
      info_.format_version = read_int_attribute(f, "format_version", path);
      if (info_.format_version != kShardFormatVersion) {
        fail(path, ": shard format_version is ", info_.format_version,
             " but this build reads version ", kShardFormatVersion);
      }
      info_.vocab_size = read_int_attribute(f, "vocab_size", path);
      info_.tokenizer = read_string_attribute(f, "tokenizer", path);
      info_.token_count = read_int_attribute(f, "token_count", path);
      info_.doc_count = read_int_attribute(f, "doc_count", path);
      info_.split = read_string_attribute(f, "split", path);
      info_.source_doc_begin = read_int_attribute(f, "source_doc_begin", path);
      info_.source_doc_end = read_int_attribute(f, "source_doc_end", path);
      checksum = read_string_attribute(f, "checksum", path);

      int64_t doc_entries = 0;
      H5Id offsets = open_dataset(f, "doc_offsets", doc_entries, path);
      if (doc_entries != info_.doc_count + 1) {
        fail(path, ": doc_count is ", info_.doc_count, " but /doc_offsets has ", doc_entries,
             " entries (expected doc_count + 1)");
      }
      doc_offsets_.resize(static_cast<size_t>(doc_entries));
      if (H5Dread(offsets.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                  doc_offsets_.data()) < 0) {
        fail(path, ": cannot read /doc_offsets");
      }
      int64_t token_entries = 0;
      H5Id tokens = open_dataset(f, "tokens", token_entries, path);
      if (token_entries != info_.token_count) {
        fail(path, ": token_count is ", info_.token_count, " but /tokens holds ", token_entries,
             " tokens");
      }
      tokens_ = tokens.release();
      file_ = file.release();
    }
    check_vocab_size(path, info_.vocab_size);
    check_split(path, info_.split);
    check_doc_offsets(path, doc_offsets_, info_.token_count);

    // Verify the checksum, then the token range (a corrupt byte is reported as corruption).
    std::vector<int32_t> chunk(static_cast<size_t>(std::min(kChecksumChunk, info_.token_count)));
    uint64_t h = kFnvOffsetBasis;
    int64_t bad_index = -1;
    int32_t bad_token = 0;
    for (int64_t at = 0; at < info_.token_count; at += kChecksumChunk) {
      const int64_t n = std::min(kChecksumChunk, info_.token_count - at);
      read_tokens(at, n, chunk.data());
      h = fnv1a_tokens(h, chunk.data(), n);
      for (int64_t i = 0; i < n && bad_index < 0; ++i) {
        if (chunk[i] < 0 || chunk[i] >= info_.vocab_size) {
          bad_index = at + i;
          bad_token = chunk[i];
        }
      }
    }
    if (hex16(h) != checksum) {
      fail(path, ": checksum mismatch (stored ", checksum, ", tokens hash to ", hex16(h),
           "): the token data is corrupt");
    }
    if (bad_index >= 0) {
      fail(path, ": token ", bad_index, " is ", bad_token, ", outside the vocabulary [0, ",
           info_.vocab_size, ")");
    }
  } catch (...) {
    close_ids(file_, tokens_);
    throw;
  }
}

ShardReader::~ShardReader() { close_ids(file_, tokens_); }

ShardReader::ShardReader(ShardReader&& other) noexcept
    : path_(std::move(other.path_)),
      info_(std::move(other.info_)),
      doc_offsets_(std::move(other.doc_offsets_)),
      file_(std::exchange(other.file_, -1)),
      tokens_(std::exchange(other.tokens_, -1)) {}

ShardReader& ShardReader::operator=(ShardReader&& other) noexcept {
  if (this != &other) {
    close_ids(file_, tokens_);
    path_ = std::move(other.path_);
    info_ = std::move(other.info_);
    doc_offsets_ = std::move(other.doc_offsets_);
    file_ = std::exchange(other.file_, -1);
    tokens_ = std::exchange(other.tokens_, -1);
  }
  return *this;
}

void ShardReader::read_tokens(int64_t offset, int64_t count, int32_t* out) const {
  if (offset < 0 || count < 0 || offset > info_.token_count - count) {
    fail(path_, ": tokens [", offset, ", ", offset + count, ") lie outside the shard's ",
         info_.token_count, " tokens");
  }
  if (count == 0) return;
  Hdf5Lock lock;
  H5Id file_space(H5Dget_space(tokens_), H5Sclose);
  if (!file_space.ok()) fail(path_, ": cannot read tokens [", offset, ", ", offset + count, ")");
  const hsize_t start = static_cast<hsize_t>(offset), n = static_cast<hsize_t>(count);
  H5Id mem_space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  if (!mem_space.ok() ||
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &n, nullptr) < 0 ||
      H5Dread(tokens_, H5T_NATIVE_INT32, mem_space.get(), file_space.get(), H5P_DEFAULT, out) < 0) {
    fail(path_, ": cannot read tokens [", offset, ", ", offset + count, ")");
  }
}

}  // namespace hymba
