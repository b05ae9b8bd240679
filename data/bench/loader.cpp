// bench-loader: how fast shards are written and opened, and how many tokens per second the data
// loader delivers, on synthetic shards of random ids written to a temporary directory.
//
// The loader figure is printed against ~53,000 tokens/s, what the 1.5B model consumes on one H100,
// so the margin is visible. Files just written sit in the page cache; --cold evicts them
// (posix_fadvise) before the open and again once the loader has started, so both read the disk.
#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/loader.h"
#include "data/shard.h"

namespace {

namespace fs = std::filesystem;
using hymba::fail;

constexpr double kH100TokensPerSecond = 53000;  // the 1.5B model's training consumption

const char* const kUsage =
    "usage: bench-loader [--shards N] [--tokens N] [--vocab N] [--seq-len T] [--batch B]\n"
    "                    [--batches N] [--prefetch N] [--no-shuffle] [--pinned] [--cold]\n"
    "                    [--dir DIR] [--keep]\n"
    "  defaults: 4 shards x 25000000 tokens, vocab 32001, T 2048, B 8, 2000 batches, prefetch 4;\n"
    "  --dir: where the shards go (default: a new temporary directory, removed afterwards)\n";

struct Flags {
  int64_t shards = 4, tokens = 25'000'000, vocab = 32001, seq_len = 2048, batch = 8, batches = 2000,
          prefetch = 4;
  bool shuffle = true, pinned = false, cold = false, keep = false;
  std::string dir;
};

int64_t positive(const std::string& name, const std::string& value) {
  int64_t v = 0;
  const auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (err != std::errc() || end != value.data() + value.size() || v < 1) {
    fail(name, ": '", value, "' is not a positive integer");
  }
  return v;
}

// --name value or --name=value; an unknown flag or a bad number is an error.
Flags parse(int argc, char** argv) {
  Flags f;
  const std::map<std::string, int64_t*> numbers = {
      {"--shards", &f.shards},    {"--tokens", &f.tokens}, {"--vocab", &f.vocab},
      {"--seq-len", &f.seq_len},  {"--batch", &f.batch},   {"--batches", &f.batches},
      {"--prefetch", &f.prefetch}};
  for (int i = 1; i < argc; ++i) {
    std::string name = argv[i];
    const size_t eq = name.find('=');
    const bool inline_value = eq != std::string::npos;
    const std::string value = inline_value ? name.substr(eq + 1) : "";
    if (inline_value) name.resize(eq);
    auto take_value = [&] {
      if (inline_value) return value;
      if (i + 1 >= argc) fail(name, " needs a value");
      return std::string(argv[++i]);
    };
    if (name == "--no-shuffle") {
      f.shuffle = false;
    } else if (name == "--pinned") {
      f.pinned = true;
    } else if (name == "--cold") {
      f.cold = true;
    } else if (name == "--keep") {
      f.keep = true;
    } else if (name == "--dir") {
      f.dir = take_value();
    } else if (auto it = numbers.find(name); it != numbers.end()) {
      *it->second = positive(name, take_value());
    } else {
      fail("unknown flag ", name);
    }
  }
  return f;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Drops the file's pages from the page cache (they are clean: written and synced).
void evict(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0 || ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
    fail(path, ": cannot evict from the page cache");
  }
  ::close(fd);
}

int run(const Flags& f) {
  const bool own_dir = f.dir.empty();
  const fs::path dir =
      own_dir ? fs::temp_directory_path() / ("hymba-bench-loader-" + std::to_string(::getpid()))
              : fs::path(f.dir);
  fs::create_directories(dir);

  // Synthetic documents: random ids, lengths uniform in [1, 2000].
  std::vector<std::string> paths;
  std::vector<int32_t> tokens(static_cast<size_t>(f.tokens));  // [tokens], reused per shard
  std::vector<int64_t> docs;                                   // [docs + 1]
  double write_s = 0, bytes = 0;
  for (int64_t s = 0; s < f.shards; ++s) {
    hymba::CounterRng rng(1234, static_cast<uint64_t>(s));
    for (int32_t& t : tokens) t = static_cast<int32_t>(rng.below(static_cast<uint64_t>(f.vocab)));
    docs.assign(1, 0);
    while (docs.back() < f.tokens) {
      docs.push_back(std::min(f.tokens, docs.back() + 1 + int64_t(rng.below(2000))));
    }
    hymba::ShardInfo info;
    info.vocab_size = f.vocab;
    info.tokenizer = "bench";
    info.split = "train";
    char name[32];
    std::snprintf(name, sizeof name, "bench-%04lld.h5", static_cast<long long>(s));
    paths.push_back((dir / name).string());
    const auto start = std::chrono::steady_clock::now();
    hymba::write_shard(paths.back(), tokens, docs, info);
    write_s += seconds_since(start);
    bytes += static_cast<double>(fs::file_size(paths.back()));
  }
  const double mb = bytes / 1e6;
  std::printf("shards: %lld x %lld tokens, vocab %lld (%s on disk), %.1f MB in %s\n",
              static_cast<long long>(f.shards), static_cast<long long>(f.tokens),
              static_cast<long long>(f.vocab), f.vocab <= 65536 ? "uint16" : "uint32", mb,
              dir.c_str());
  std::printf("write:  %8.1f MB/s  (%.2f s: build, write through .tmp, fsync, rename)\n",
              mb / write_s, write_s);

  if (f.cold) {
    for (const std::string& p : paths) evict(p);
  }
  auto start = std::chrono::steady_clock::now();
  for (const std::string& p : paths) hymba::ShardReader reader(p);
  const double open_s = seconds_since(start);
  std::printf("open:   %8.1f MB/s  (%.2f s: HDF5 open, checks, checksum of every token)%s\n",
              mb / open_s, open_s, f.cold ? ", cold cache" : "");

  hymba::LoaderOptions o;
  o.shards = paths;
  o.seq_len = f.seq_len;
  o.batch_size = f.batch;
  o.shuffle = f.shuffle;
  o.prefetch = static_cast<int>(f.prefetch);
  o.pinned = f.pinned;
  start = std::chrono::steady_clock::now();
  hymba::DataLoader loader(o);
  loader.next();  // the first batch: the ring starts filling
  const double startup_s = seconds_since(start);
  if (f.cold) {
    for (const std::string& p : paths) evict(p);  // its checks at open read every token
  }
  start = std::chrono::steady_clock::now();
  for (int64_t k = 0; k < f.batches; ++k) loader.next();
  const double loop_s = seconds_since(start);
  const double tokens_per_s = static_cast<double>(f.batches * f.batch * f.seq_len) / loop_s;
  const char* order = f.shuffle ? "shuffled" : "in order";
  const char* buffers = !f.pinned                        ? ""
                        : hymba::cuda_device_count() > 0 ? ", pinned"
                                                         : ", pinned asked for: no CUDA device";
  std::printf("loader: startup %.2f s (opens and verifies every shard), then %lld batches of %lld x"
              " %lld (%s%s)%s in %.2f s\n",
              startup_s, static_cast<long long>(f.batches), static_cast<long long>(f.batch),
              static_cast<long long>(f.seq_len), order, buffers, f.cold ? " from a cold cache" : "",
              loop_s);
  std::printf(
      "loader: %.0f tokens/s = %.0fx the ~%.0f tokens/s a 1.5B model consumes on one H100\n",
      tokens_per_s, tokens_per_s / kH100TokensPerSecond, kH100TokensPerSecond);

  if (own_dir && !f.keep) fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  try {
    flags = parse(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n" << kUsage;
    return 2;
  }
  try {
    return run(flags);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
