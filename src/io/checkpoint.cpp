#include "io/checkpoint.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "data/hdf5_lock.h"

namespace hymba {
namespace {

namespace fs = std::filesystem;

// The groups holding the tensors, by what they hold.
constexpr const char* kParams = "params";
constexpr const char* kAdamM = "adam_m";
constexpr const char* kAdamV = "adam_v";
constexpr const char* kGemm = "gemm_algorithms";
constexpr const char* kGemmVersion = "cublaslt_version";

// Elements per HDF5 chunk (1 MiB of float32). Every chunk carries its own Fletcher-32 checksum;
// chunks of this size keep the per-chunk overhead negligible.
constexpr hsize_t kChunkElements = hsize_t{1} << 18;

// HDF5's own account of the last failure: the most specific entry of the thread's error stack
// (e.g. "truncated file: eof = 1000, ..." or "data error detected by fletcher32 checksum").
// Read it right after the failed call: the next HDF5 call clears the stack.
std::string hdf5_reason() {
  std::string reason;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_UPWARD,
      [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
        if (n == 0 && e->desc) *static_cast<std::string*>(out) = e->desc;
        return 0;
      },
      &reason);
  return reason.empty() ? "" : " (HDF5: " + reason + ")";
}

// Throws an Error that ends with HDF5's reason for the failure.
template <class... Args>
[[noreturn]] void fail_h5(const Args&... args) {
  fail(args..., hdf5_reason());
}

std::string show_shape(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// File locks where the file system has them; where it has none (some NFS and Lustre mounts) the
// file still opens instead of failing as if it were corrupt. Objects in the 1.8 format, so that
// an attribute above 64 KiB (a long config) is stored densely instead of refused.
H5Id file_access(const std::string& path) {
  H5Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (!fapl.ok() || H5Pset_file_locking(fapl.get(), true, true) < 0 ||
      H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V18, H5F_LIBVER_V18) < 0) {
    fail_h5(path, ": cannot set up HDF5 file access");
  }
  return fapl;
}

// ---- writing -------------------------------------------------------------------------------

void write_attribute(hid_t file, const char* name, hid_t file_type, hid_t mem_type,
                     const void* value, const std::string& path) {
  H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  if (!space.ok()) fail_h5(path, ": cannot create a dataspace for attribute ", name);
  H5Id attr(H5Acreate2(file, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) fail_h5(path, ": cannot create attribute ", name);
  if (H5Awrite(attr.get(), mem_type, value) < 0) fail_h5(path, ": cannot write attribute ", name);
  if (!attr.close()) fail_h5(path, ": cannot close attribute ", name);
}

// A fixed-length, NUL-terminated string (readable as str by h5py).
void write_string_attribute(hid_t file, const char* name, const std::string& value,
                            const std::string& path) {
  H5Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  if (!type.ok() || H5Tset_size(type.get(), value.size() + 1) < 0 ||
      H5Tset_strpad(type.get(), H5T_STR_NULLTERM) < 0) {
    fail_h5(path, ": cannot make a string type for attribute ", name);
  }
  write_attribute(file, name, type.get(), type.get(), value.c_str(), path);
}

void write_meta(hid_t file, const CheckpointMeta& meta, const std::string& path) {
  const int64_t version = kCheckpointFormatVersion;
  write_attribute(file, "format_version", H5T_STD_I64LE, H5T_NATIVE_INT64, &version, path);
  write_attribute(file, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, &meta.step, path);
  write_attribute(file, "adam_steps", H5T_STD_I64LE, H5T_NATIVE_INT64, &meta.adam_steps, path);
  write_attribute(file, "loader_rows", H5T_STD_U64LE, H5T_NATIVE_UINT64, &meta.loader_rows, path);
  write_attribute(file, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &meta.seed, path);
  write_string_attribute(file, "config", meta.config, path);
}

// Dataset `link` of `loc` (shown as `name`) of shape `dims`, written from `data` (mem_type
// values) and left open for attributes. Chunked by `chunk` with a Fletcher-32 checksum per chunk;
// empty data has nothing to checksum and cannot be chunked, so it stays plain (and unwritten).
H5Id write_dataset(hid_t loc, const char* link, const std::string& name, hid_t file_type, hid_t mem_type,
                   const std::vector<hsize_t>& dims, const std::vector<hsize_t>& chunk, const void* data,
                   const std::string& path) {
  hsize_t count = 1;
  for (hsize_t d : dims) count *= d;
  H5Id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
  if (!space.ok()) fail_h5(path, ": cannot create a dataspace for ", name);
  H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (!dcpl.ok()) fail_h5(path, ": cannot create dataset properties for ", name);
  if (count > 0 && (H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) < 0 ||
                    H5Pset_fletcher32(dcpl.get()) < 0)) {
    fail_h5(path, ": cannot set up chunks and checksums for ", name);
  }
  H5Id set(H5Dcreate2(loc, link, file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
  if (!set.ok()) fail_h5(path, ": cannot create dataset ", name);
  if (count > 0 && H5Dwrite(set.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
    fail_h5(path, ": cannot write ", name);
  }
  return set;
}

// /gemm_algorithms [shapes, kGemmChoiceWords] int64, one chunk.
void write_gemm_choices(hid_t file, const GemmChoices& c, const std::string& path) {
  const std::string name = std::string("/") + kGemm;
  const std::vector<hsize_t> dims = {c.shapes.size(), kGemmChoiceWords};
  H5Id set = write_dataset(file, kGemm, name, H5T_STD_I64LE, H5T_NATIVE_INT64, dims, dims, c.shapes.data(), path);
  write_attribute(set.get(), kGemmVersion, H5T_STD_I64LE, H5T_NATIVE_INT64, &c.library_version, path);
  if (!set.close()) fail_h5(path, ": cannot close ", name);
}

// Chunked along the first dimension (whole rows).
void write_tensor(hid_t group, const char* group_name, const ParamTensor& t, const float* data,
                  const std::string& path) {
  HYMBA_ASSERT(!t.full_shape.empty());
  const std::string name = std::string("/") + group_name + "/" + t.name;
  const std::vector<hsize_t> dims(t.full_shape.begin(), t.full_shape.end());
  std::vector<hsize_t> chunk = dims;
  if (t.full_numel() > 0) {
    const hsize_t row = static_cast<hsize_t>(t.full_numel()) / chunk[0];
    chunk[0] = std::clamp<hsize_t>(kChunkElements / row, 1, chunk[0]);
  }
  std::vector<float> scratch;
  const float* hf = t.full_numel() > 0 ? hf_elements(t, data, scratch) : nullptr;
  H5Id set = write_dataset(group, t.name.c_str(), name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, dims, chunk, hf, path);
  if (!set.close()) fail_h5(path, ": cannot close ", name);
}

void write_group(hid_t file, const char* group_name, const ParamLayout& layout, const float* data,
                 const std::string& path) {
  HYMBA_ASSERT(layout.tp.size == 1);  // files hold whole HF tensors (hf_elements)
  H5Id group(H5Gcreate2(file, group_name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!group.ok()) fail_h5(path, ": cannot create group /", group_name);
  for (const ParamTensor& t : layout.tensors) write_tensor(group.get(), group_name, t, data, path);
  if (!group.close()) fail_h5(path, ": cannot close group /", group_name);
}

void write_hdf5(const std::string& path, const ParamLayout& layout, const CheckpointTensors& t,
                const CheckpointMeta& meta) {
  Hdf5Lock lock;
  H5Id fapl = file_access(path);
  H5Id file(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  if (!file.ok()) fail_h5(path, ": cannot create the HDF5 file");
  write_meta(file.get(), meta, path);
  if (meta.gemm && !meta.gemm->shapes.empty()) write_gemm_choices(file.get(), *meta.gemm, path);
  write_group(file.get(), kParams, layout, t.params, path);
  if (t.adam_m) {
    write_group(file.get(), kAdamM, layout, t.adam_m, path);
    write_group(file.get(), kAdamV, layout, t.adam_v, path);
  }
  if (H5Fflush(file.get(), H5F_SCOPE_GLOBAL) < 0) fail_h5(path, ": cannot flush the HDF5 file");
  if (!file.close()) fail_h5(path, ": cannot close the HDF5 file");
}

// A write that fails for want of disk leaves HDF5 1.10 unable to close the file (and liable to
// crash at exit), so a checkpoint that cannot fit is refused before it is started. The estimate
// is the tensor data plus a generous allowance for HDF5's metadata.
void check_free_space(const std::string& path, const ParamLayout& layout, int groups,
                      const CheckpointMeta& meta) {
  const fs::path dir = fs::absolute(path).parent_path();
  const uintmax_t need = uintmax_t(groups) * (uintmax_t(layout.count) * sizeof(float) +
                                              layout.tensors.size() * 4096) +
                         meta.config.size() + (1u << 20);
  std::error_code ec;
  const fs::space_info space = fs::space(dir, ec);
  if (ec) fail(path, ": cannot read the free space of ", dir.string(), " (", ec.message(), ")");
  if (space.available < need) {
    fail(path, ": not enough disk space for the checkpoint: it needs about ", need >> 20,
         " MiB, ", dir.string(), " has ", space.available >> 20, " MiB free");
  }
}

// The data must be on disk before the rename makes it visible under the final name, and the
// rename itself must be on disk before the checkpoint is counted on (and older ones pruned).
void sync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open to sync (", std::strerror(errno), ")");
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, ": cannot sync to disk (", std::strerror(err), ")");
  }
  ::close(fd);
}

// ---- reading -------------------------------------------------------------------------------

H5Id open_checkpoint(const std::string& path) {
  if (!fs::is_regular_file(path)) fail(path, ": no such checkpoint file");
  H5Id fapl = file_access(path);
  H5Id file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
  if (!file.ok()) fail_h5(path, ": not a readable HDF5 checkpoint (truncated or corrupt)");
  return file;
}

H5Id open_attribute(hid_t file, const char* name, H5T_class_t want, const std::string& path) {
  const htri_t exists = H5Aexists(file, name);
  if (exists < 0) fail_h5(path, ": cannot look up attribute ", name);
  if (exists == 0) fail(path, ": missing attribute ", name);
  H5Id attr(H5Aopen(file, name, H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) fail_h5(path, ": cannot open attribute ", name);
  H5Id type(H5Aget_type(attr.get()), H5Tclose);
  if (!type.ok()) fail_h5(path, ": cannot read the type of attribute ", name);
  if (H5Tget_class(type.get()) != want) {
    fail(path, ": attribute ", name, " is not ", want == H5T_STRING ? "a string" : "an integer");
  }
  H5Id space(H5Aget_space(attr.get()), H5Sclose);
  if (!space.ok() || H5Sget_simple_extent_npoints(space.get()) != 1) {
    fail(path, ": attribute ", name, " is not a single value");
  }
  return attr;
}

template <class T>
T read_int_attribute(hid_t file, const char* name, const std::string& path) {
  static_assert(std::is_same_v<T, int64_t> || std::is_same_v<T, uint64_t>);
  H5Id attr = open_attribute(file, name, H5T_INTEGER, path);
  T v = 0;
  const hid_t mem = std::is_same_v<T, int64_t> ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64;
  if (H5Aread(attr.get(), mem, &v) < 0) fail_h5(path, ": cannot read attribute ", name);
  return v;
}

std::string read_string_attribute(hid_t file, const char* name, const std::string& path) {
  H5Id attr = open_attribute(file, name, H5T_STRING, path);
  H5Id type(H5Aget_type(attr.get()), H5Tclose);
  if (!type.ok()) fail_h5(path, ": cannot read the type of attribute ", name);
  const htri_t variable = H5Tis_variable_str(type.get());
  if (variable < 0) fail_h5(path, ": cannot read the type of attribute ", name);
  if (variable) fail(path, ": attribute ", name, " is a variable-length string (expected fixed)");
  const size_t size = H5Tget_size(type.get());
  if (size == 0) fail_h5(path, ": cannot read the size of attribute ", name);
  std::string value(size, '\0');
  if (H5Aread(attr.get(), type.get(), value.data()) < 0) {
    fail_h5(path, ": cannot read attribute ", name);
  }
  value.resize(std::min(value.find('\0'), size));
  return value;
}

// Opens dataset `link` of `loc` (shown as `name`), which must hold `bytes`-byte values of class
// `cls` (`type` names them in the error).
H5Id open_dataset(hid_t loc, const char* link, const std::string& name, H5T_class_t cls, size_t bytes,
                  const char* type, const std::string& path) {
  H5Id set(H5Dopen2(loc, link, H5P_DEFAULT), H5Dclose);
  if (!set.ok()) fail_h5(path, ": cannot open ", name);
  H5Id t(H5Dget_type(set.get()), H5Tclose);
  if (!t.ok() || H5Tget_class(t.get()) != cls || H5Tget_size(t.get()) != bytes) fail(path, ": ", name, " is not ", type);
  return set;
}

std::vector<int64_t> dataset_shape(hid_t set, const std::string& name, const std::string& path) {
  H5Id space(H5Dget_space(set), H5Sclose);
  const int rank = space.ok() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank < 0) fail_h5(path, ": cannot read the shape of ", name);
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  if (H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr) != rank) {
    fail_h5(path, ": cannot read the shape of ", name);
  }
  return std::vector<int64_t>(dims.begin(), dims.end());
}

// /gemm_algorithms, when the file has it; every row must be a shape the model can run.
std::optional<GemmChoices> read_gemm_choices(hid_t file, const std::string& path) {
  const std::string name = std::string("/") + kGemm;
  const htri_t exists = H5Lexists(file, kGemm, H5P_DEFAULT);
  if (exists < 0) fail_h5(path, ": cannot look up ", name);
  if (exists == 0) return std::nullopt;
  H5Id set = open_dataset(file, kGemm, name, H5T_INTEGER, 8, "int64", path);
  const std::vector<int64_t> shape = dataset_shape(set.get(), name, path);
  if (shape.size() != 2 || shape[1] != kGemmChoiceWords) {
    fail(path, ": ", name, " has shape ", show_shape(shape), ", not [shapes, ", kGemmChoiceWords, "]");
  }
  GemmChoices c;
  c.shapes.resize(size_t(shape[0]));
  if (H5Dread(set.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, c.shapes.data()) < 0) {
    fail_h5(path, ": cannot read ", name, " (corrupt or truncated data)");
  }
  c.library_version = read_int_attribute<int64_t>(set.get(), kGemmVersion, path);
  for (size_t i = 0; i < c.shapes.size(); ++i) {
    if (const std::string problem = gemm_shape_problem(c.shapes[i]); !problem.empty()) {
      fail(path, ": ", name, " row ", i, ": ", problem);
    }
  }
  return c;
}

CheckpointMeta read_meta(hid_t file, const std::string& path) {
  // The version first: another version may lay the file out differently.
  const auto version = read_int_attribute<int64_t>(file, "format_version", path);
  if (version != kCheckpointFormatVersion) {
    fail(path, ": checkpoint format_version is ", version, " but this build reads version ",
         kCheckpointFormatVersion);
  }
  CheckpointMeta meta;
  meta.step = read_int_attribute<int64_t>(file, "step", path);
  meta.adam_steps = read_int_attribute<int64_t>(file, "adam_steps", path);
  meta.loader_rows = read_int_attribute<uint64_t>(file, "loader_rows", path);
  meta.seed = read_int_attribute<uint64_t>(file, "seed", path);
  meta.config = read_string_attribute(file, "config", path);
  meta.gemm = read_gemm_choices(file, path);
  return meta;
}

bool has_group(hid_t file, const char* name, const std::string& path) {
  const htri_t exists = H5Lexists(file, name, H5P_DEFAULT);
  if (exists < 0) fail_h5(path, ": cannot look up group /", name);
  return exists > 0;
}

// Checks the stored type and shape against the model's before reading, so that a checkpoint of
// another model is named as such rather than read into the wrong places.
void read_tensor(hid_t group, const char* group_name, const ParamTensor& t, float* data,
                 const std::string& path) {
  const std::string name = std::string("/") + group_name + "/" + t.name;
  const htri_t exists = H5Lexists(group, t.name.c_str(), H5P_DEFAULT);
  if (exists < 0) fail_h5(path, ": cannot look up ", name);
  if (exists == 0) fail(path, ": missing tensor ", name);
  H5Id set = open_dataset(group, t.name.c_str(), name, H5T_FLOAT, 4, "float32", path);
  const std::vector<int64_t> shape = dataset_shape(set.get(), name, path);
  if (shape != t.full_shape) {
    fail(path, ": ", name, " has shape ", show_shape(shape), " but the model's is ",
         show_shape(t.full_shape));
  }
  if (t.full_numel() == 0) return;
  std::vector<float> scratch;
  read_hf_elements(t, data, scratch, [&](float* hf) {
    if (H5Dread(set.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, hf) < 0) {
      fail_h5(path, ": cannot read ", name, " (corrupt or truncated data)");
    }
  });
}

// Fills `data` (layout.storage values, padding zeroed) from the group's tensors, which must be
// exactly the layout's.
void read_group(hid_t file, const char* group_name, const ParamLayout& layout, float* data,
                const std::string& path) {
  HYMBA_ASSERT(layout.tp.size == 1);  // files hold whole HF tensors (hf_elements)
  if (!has_group(file, group_name, path)) fail(path, ": missing group /", group_name);
  H5Id group(H5Gopen2(file, group_name, H5P_DEFAULT), H5Gclose);
  if (!group.ok()) fail_h5(path, ": cannot open group /", group_name);
  H5G_info_t info;
  if (H5Gget_info(group.get(), &info) < 0) fail_h5(path, ": cannot list group /", group_name);
  if (info.nlinks != layout.tensors.size()) {
    fail(path, ": /", group_name, " holds ", info.nlinks, " tensors but the model has ",
         layout.tensors.size());
  }
  std::fill(data, data + layout.storage, 0.0f);
  for (const ParamTensor& t : layout.tensors) read_tensor(group.get(), group_name, t, data, path);
}

// ---- the run folder ------------------------------------------------------------------------

constexpr std::string_view kPrefix = "checkpoint-", kSuffix = ".h5";

// The step of a file named checkpoint-<8 or more digits>.h5; -1 for any other name.
int64_t step_of(const std::string& name) {
  if (!name.starts_with(kPrefix) || !name.ends_with(kSuffix)) return -1;
  const char* first = name.data() + kPrefix.size();
  const char* last = name.data() + name.size() - kSuffix.size();
  if (last - first < 8 || !std::all_of(first, last, [](char c) { return c >= '0' && c <= '9'; })) {
    return -1;
  }
  int64_t step = -1;
  const auto [end, ec] = std::from_chars(first, last, step);
  return ec == std::errc() && end == last ? step : -1;
}

// (step, path) of every checkpoint in run_dir, oldest first.
std::vector<std::pair<int64_t, std::string>> checkpoints_by_step(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> found;
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) return found;
  for (fs::directory_iterator it(run_dir, ec), end; !ec && it != end; it.increment(ec)) {
    const int64_t step = step_of(it->path().filename().string());
    if (step >= 0 && it->is_regular_file()) found.emplace_back(step, it->path().string());
  }
  if (ec) fail(run_dir, ": cannot list checkpoints (", ec.message(), ")");
  std::sort(found.begin(), found.end());
  return found;
}

}  // namespace

void save_checkpoint(const std::string& path, const ParamLayout& layout, const CheckpointTensors& t,
                     const CheckpointMeta& meta) {
  HYMBA_ASSERT(t.params != nullptr);
  HYMBA_ASSERT((t.adam_m == nullptr) == (t.adam_v == nullptr));
  check_free_space(path, layout, t.adam_m ? 3 : 1, meta);
  const std::string tmp = path + ".tmp";
  try {
    write_hdf5(tmp, layout, t, meta);
    sync_path(tmp, O_RDONLY);
  } catch (...) {
    std::error_code ignored;  // the write's own error is the one to report
    fs::remove(tmp, ignored);
    throw;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail(tmp, ": cannot rename to ", path, " (", ec.message(), ")");
  sync_path(fs::absolute(path).parent_path().string(), O_RDONLY | O_DIRECTORY);
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  Hdf5Lock lock;
  H5Id file = open_checkpoint(path);
  return read_meta(file.get(), path);
}

LoadedCheckpoint load_checkpoint(const std::string& path, const ParamLayout& layout, float* params,
                                 float* adam_m, float* adam_v) {
  HYMBA_ASSERT(params != nullptr);
  HYMBA_ASSERT((adam_m == nullptr) == (adam_v == nullptr));
  Hdf5Lock lock;
  H5Id file = open_checkpoint(path);
  LoadedCheckpoint out;
  out.meta = read_meta(file.get(), path);
  read_group(file.get(), kParams, layout, params, path);
  if (!adam_m) return out;
  const bool has_m = has_group(file.get(), kAdamM, path);
  if (has_m != has_group(file.get(), kAdamV, path)) {
    fail(path, ": holds /", has_m ? kAdamM : kAdamV, " but not /", has_m ? kAdamV : kAdamM);
  }
  out.has_optimizer_state = has_m;
  if (has_m) {
    read_group(file.get(), kAdamM, layout, adam_m, path);
    read_group(file.get(), kAdamV, layout, adam_v, path);
  } else {
    std::fill(adam_m, adam_m + layout.storage, 0.0f);
    std::fill(adam_v, adam_v + layout.storage, 0.0f);
  }
  return out;
}

std::vector<std::string> list_checkpoints(const std::string& run_dir) {
  std::vector<std::string> paths;
  for (auto& [step, path] : checkpoints_by_step(run_dir)) paths.push_back(std::move(path));
  return paths;
}

std::string checkpoint_path(const std::string& run_dir, int64_t step) {
  HYMBA_ASSERT(step >= 0);
  char name[40];
  std::snprintf(name, sizeof name, "checkpoint-%08lld.h5", static_cast<long long>(step));
  return (fs::path(run_dir) / name).string();
}

void prune_checkpoints(const std::string& run_dir, int64_t keep, int64_t keep_every) {
  HYMBA_ASSERT(keep >= 1);
  const auto found = checkpoints_by_step(run_dir);
  const size_t old = found.size() > size_t(keep) ? found.size() - size_t(keep) : 0;
  for (size_t i = 0; i < old; ++i) {
    const auto& [step, path] = found[i];
    if (keep_every > 0 && step % keep_every == 0) continue;
    std::error_code ec;
    fs::remove(path, ec);
    if (ec) fail(path, ": cannot remove an old checkpoint (", ec.message(), ")");
  }
}

}  // namespace hymba
