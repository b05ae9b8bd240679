// HDF5 token shards: round trips on both on-disk token widths, the checksum's definition, and
// refusal of every kind of damaged or inconsistent file with a message naming file and problem.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/test_util.h"
#include "core/rng.h"
#include "data/hdf5_lock.h"
#include "data/shard.h"

namespace hymba::test {
namespace {

namespace fs = std::filesystem;

using ShardTest = TempDirTest;

ShardInfo info_for(int64_t vocab_size) {
  ShardInfo info;
  info.vocab_size = vocab_size;
  info.tokenizer = "0123456789abcdef";
  info.split = "train";
  info.source_doc_begin = 7;
  info.source_doc_end = 12;
  return info;
}

// `n` random tokens below `vocab` (the largest id included), and documents of 1 to 40 tokens.
struct Data {
  std::vector<int32_t> tokens;
  std::vector<int64_t> doc_offsets;
};
Data random_data(int64_t n, int64_t vocab, uint64_t seed) {
  CounterRng rng(seed, 1);
  Data d;
  for (int64_t i = 0; i < n; ++i) d.tokens.push_back(static_cast<int32_t>(rng.below(vocab)));
  if (n > 0) d.tokens[n / 2] = static_cast<int32_t>(vocab - 1);
  d.doc_offsets.push_back(0);
  while (d.doc_offsets.back() < n) {
    d.doc_offsets.push_back(std::min(n, d.doc_offsets.back() + 1 + int64_t(rng.below(40))));
  }
  return d;
}

std::vector<int32_t> read_all(const ShardReader& r) {
  std::vector<int32_t> out(static_cast<size_t>(r.info().token_count));
  r.read_tokens(0, r.info().token_count, out.data());
  return out;
}

// ---- direct HDF5 access, to inspect and damage files the way other tools or bit rot would ----

// Bytes per token of /tokens on disk; false in `is_unsigned` for a signed type.
size_t token_width(const std::string& path, bool& is_unsigned) {
  Hdf5Lock lock;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, "tokens", H5P_DEFAULT);
  const hid_t t = H5Dget_type(d);
  const size_t width = H5Tget_size(t);
  is_unsigned = H5Tget_sign(t) == H5T_SGN_NONE;
  EXPECT_TRUE(H5Tclose(t) >= 0 && H5Dclose(d) >= 0 && H5Fclose(f) >= 0);
  return width;
}

// File offset of /tokens' first byte (contiguous layout).
int64_t token_data_offset(const std::string& path) {
  Hdf5Lock lock;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, "tokens", H5P_DEFAULT);
  const haddr_t at = H5Dget_offset(d);
  EXPECT_NE(at, HADDR_UNDEF);
  EXPECT_TRUE(H5Dclose(d) >= 0 && H5Fclose(f) >= 0);
  return static_cast<int64_t>(at);
}

std::string string_attribute(const std::string& path, const char* name) {
  Hdf5Lock lock;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t a = H5Aopen(f, name, H5P_DEFAULT);
  const hid_t t = H5Aget_type(a);
  std::string s(H5Tget_size(t), '\0');
  EXPECT_GE(H5Aread(a, t, s.data()), 0);
  EXPECT_TRUE(H5Tclose(t) >= 0 && H5Aclose(a) >= 0 && H5Fclose(f) >= 0);
  return s.substr(0, s.find('\0'));
}

// Applies `edit` to the open file (read-write).
void edit_file(const std::string& path, const std::function<void(hid_t)>& edit) {
  Hdf5Lock lock;
  const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  edit(f);
  ASSERT_GE(H5Fclose(f), 0);
}

void set_int_attribute(const std::string& path, const char* name, int64_t value) {
  edit_file(path, [&](hid_t f) {
    const hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    EXPECT_GE(H5Awrite(a, H5T_NATIVE_INT64, &value), 0);
    EXPECT_GE(H5Aclose(a), 0);
  });
}

// Overwrites /doc_offsets with values of the same count.
void set_doc_offsets(const std::string& path, const std::vector<int64_t>& offsets) {
  edit_file(path, [&](hid_t f) {
    const hid_t d = H5Dopen2(f, "doc_offsets", H5P_DEFAULT);
    EXPECT_GE(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets.data()), 0);
    EXPECT_GE(H5Dclose(d), 0);
  });
}

// ---- round trips ---------------------------------------------------------------------------

void expect_round_trip(const std::string& path, int64_t vocab, size_t expected_width) {
  const Data d = random_data(5000, vocab, 3);
  write_shard(path, d.tokens, d.doc_offsets, info_for(vocab));
  bool is_unsigned = false;
  EXPECT_EQ(token_width(path, is_unsigned), expected_width);
  EXPECT_TRUE(is_unsigned);
  const ShardReader r(path);
  EXPECT_EQ(r.path(), path);
  EXPECT_EQ(read_all(r), d.tokens);
  EXPECT_EQ(r.doc_offsets(), d.doc_offsets);
  // A range in the middle, a single last token, and an empty range.
  std::vector<int32_t> part(700);
  r.read_tokens(1234, 700, part.data());
  EXPECT_TRUE(std::equal(part.begin(), part.end(), d.tokens.begin() + 1234));
  r.read_tokens(4999, 1, part.data());
  EXPECT_EQ(part[0], d.tokens[4999]);
  r.read_tokens(5000, 0, nullptr);
}

TEST_F(ShardTest, RoundTripsSixteenBitTokens) { expect_round_trip(path("a.h5"), 1000, 2); }

TEST_F(ShardTest, RoundTripsThirtyTwoBitTokens) { expect_round_trip(path("a.h5"), 70000, 4); }

TEST_F(ShardTest, VocabularyOf65536StillFitsSixteenBits) {
  expect_round_trip(path("a.h5"), 65536, 2);
}

TEST_F(ShardTest, AttributesRoundTripAndCountsComeFromTheData) {
  const Data d = random_data(300, 1000, 4);
  ShardInfo info = info_for(1000);
  info.split = "val";
  info.token_count = 999;  // ignored: taken from the data
  info.doc_count = 999;
  write_shard(path("a.h5"), d.tokens, d.doc_offsets, info);
  const ShardInfo got = ShardReader(path("a.h5")).info();
  EXPECT_EQ(got.format_version, kShardFormatVersion);
  EXPECT_EQ(got.vocab_size, 1000);
  EXPECT_EQ(got.tokenizer, "0123456789abcdef");
  EXPECT_EQ(got.token_count, 300);
  EXPECT_EQ(got.doc_count, static_cast<int64_t>(d.doc_offsets.size()) - 1);
  EXPECT_EQ(got.split, "val");
  EXPECT_EQ(got.source_doc_begin, 7);
  EXPECT_EQ(got.source_doc_end, 12);
}

TEST_F(ShardTest, EmptyShardRoundTrips) {
  write_shard(path("a.h5"), {}, {0}, info_for(10));
  const ShardReader r(path("a.h5"));
  EXPECT_EQ(r.info().token_count, 0);
  EXPECT_EQ(r.info().doc_count, 0);
  EXPECT_EQ(r.doc_offsets(), std::vector<int64_t>{0});
}

TEST_F(ShardTest, ReadOutsideTheShardIsAnError) {
  const Data d = random_data(100, 1000, 5);
  write_shard(path("a.h5"), d.tokens, d.doc_offsets, info_for(1000));
  const ShardReader r(path("a.h5"));
  std::vector<int32_t> out(200);
  expect_error([&] { r.read_tokens(-1, 5, out.data()); },
               {path("a.h5"), "[-1, 4)", "outside", "100 tokens"});
  expect_error([&] { r.read_tokens(95, 6, out.data()); }, {path("a.h5"), "[95, 101)", "outside"});
  expect_error([&] { r.read_tokens(10, -1, out.data()); }, {path("a.h5"), "outside"});
}

TEST_F(ShardTest, MovedReaderKeepsReading) {
  const Data d = random_data(100, 1000, 6);
  write_shard(path("a.h5"), d.tokens, d.doc_offsets, info_for(1000));
  write_shard(path("b.h5"), {1, 2}, {0, 2}, info_for(1000));
  ShardReader a(path("a.h5"));
  ShardReader b(std::move(a));
  EXPECT_EQ(read_all(b), d.tokens);
  ShardReader c(path("b.h5"));
  c = std::move(b);  // closes b.h5's handles, takes a.h5's
  EXPECT_EQ(c.path(), path("a.h5"));
  EXPECT_EQ(read_all(c), d.tokens);
}

// The checksum is FNV-1a over the tokens' little-endian uint32 bytes, whatever the disk width.
TEST_F(ShardTest, ChecksumIsFnv1aOfTheTokenValues) {
  const std::vector<int32_t> tokens = {0, 1, 258, 999, 65535};
  uint64_t h = 0xCBF29CE484222325ull;
  for (int32_t t : tokens) {
    const auto v = static_cast<uint32_t>(t);
    const unsigned char bytes[4] = {
        static_cast<unsigned char>(v), static_cast<unsigned char>(v >> 8),
        static_cast<unsigned char>(v >> 16), static_cast<unsigned char>(v >> 24)};
    for (unsigned char c : bytes) h = (h ^ c) * 0x100000001B3ull;
  }
  char want[17];
  std::snprintf(want, sizeof want, "%016llx", static_cast<unsigned long long>(h));
  write_shard(path("narrow.h5"), tokens, {0, 5}, info_for(65536));
  write_shard(path("wide.h5"), tokens, {0, 5}, info_for(100000));
  EXPECT_EQ(string_attribute(path("narrow.h5"), "checksum"), want);
  EXPECT_EQ(string_attribute(path("wide.h5"), "checksum"), want);
}

// ---- what write_shard refuses --------------------------------------------------------------

TEST_F(ShardTest, WriteRefusesInconsistentInputAndLeavesNoFile) {
  const std::string p = path("a.h5");
  const ShardInfo info = info_for(100);
  expect_error([&] { write_shard(p, {1, 100}, {0, 2}, info); }, {p, "token 1 is 100", "[0, 100)"});
  expect_error([&] { write_shard(p, {-1, 5}, {0, 2}, info); }, {p, "token 0 is -1"});
  expect_error(
      [&] {
        write_shard(p, {1, 2, 3}, {0, 2}, info);
      },
      {p, "doc_offsets ends at 2", "token_count is 3"});
  expect_error([&] { write_shard(p, {1, 2, 3}, {1, 3}, info); }, {p, "doc_offsets starts at 1"});
  expect_error(
      [&] {
        write_shard(p, {1, 2, 3}, {0, 2, 1, 3}, info);
      },
      {p, "doc_offsets decreases at entry 2"});
  expect_error([&] { write_shard(p, {1, 2, 3}, {}, info); }, {p, "doc_offsets is empty"});
  expect_error([&] { write_shard(p, {0}, {0, 1}, info_for(0)); }, {p, "vocab_size is 0"});
  ShardInfo bad_split = info;
  bad_split.split = "test";
  expect_error([&] { write_shard(p, {0}, {0, 1}, bad_split); }, {p, "split is 'test'"});
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(ShardTest, WriteGoesThroughTmpAndReplacesAnOldShard) {
  write_shard(path("a.h5"), {1, 2, 3}, {0, 3}, info_for(10));
  write_shard(path("a.h5"), {4, 5}, {0, 1, 2}, info_for(10));
  EXPECT_FALSE(fs::exists(path("a.h5.tmp")));
  EXPECT_EQ(read_all(ShardReader(path("a.h5"))), (std::vector<int32_t>{4, 5}));
}

// A write that fails halfway (here: past the process's file size limit, as on a full disk)
// leaves neither the final name nor the .tmp behind.
TEST_F(ShardTest, AWriteThatFailsHalfwayLeavesNeitherName) {
  struct FileSizeLimit {
    rlimit old{};
    explicit FileSizeLimit(rlim_t bytes) {
      std::signal(SIGXFSZ, SIG_IGN);  // a write past the limit then fails with EFBIG
      getrlimit(RLIMIT_FSIZE, &old);
      rlimit lower = old;
      lower.rlim_cur = bytes;
      setrlimit(RLIMIT_FSIZE, &lower);
    }
    ~FileSizeLimit() { setrlimit(RLIMIT_FSIZE, &old); }
  };
  const Data d = random_data(100000, 1000, 9);  // 200 kB of tokens
  {
    const FileSizeLimit limit(64 * 1024);
    expect_error([&] { write_shard(path("a.h5"), d.tokens, d.doc_offsets, info_for(1000)); },
                 {path("a.h5.tmp")});
  }
  EXPECT_FALSE(fs::exists(path("a.h5.tmp")));
  EXPECT_FALSE(fs::exists(path("a.h5")));
}

// ---- what ShardReader refuses --------------------------------------------------------------

TEST_F(ShardTest, RefusesAMissingOrUnreadableFile) {
  expect_error([&] { ShardReader r(path("none.h5")); }, {path("none.h5"), "no such shard file"});
  if (::geteuid() == 0) return;  // root reads any file
  write_shard(path("a.h5"), {1}, {0, 1}, info_for(10));
  fs::permissions(path("a.h5"), fs::perms::none);
  expect_error([&] { ShardReader r(path("a.h5")); }, {path("a.h5"), "cannot read: Permission denied"});
}

TEST_F(ShardTest, RefusesTruncatedFiles) {
  const Data d = random_data(4000, 1000, 7);
  write_shard(path("a.h5"), d.tokens, d.doc_offsets, info_for(1000));
  const auto size = static_cast<int64_t>(fs::file_size(path("a.h5")));
  for (int64_t keep : {int64_t{0}, int64_t{100}, size / 2, size - 1}) {
    const std::string cut = path("cut" + std::to_string(keep) + ".h5");
    fs::copy_file(path("a.h5"), cut);
    fs::resize_file(cut, static_cast<uintmax_t>(keep));
    expect_error([&] { ShardReader r(cut); },
                 {cut, "not a readable HDF5 shard (truncated or corrupt)"});
  }
}

TEST_F(ShardTest, RefusesAFlippedByteInTheTokens) {
  const Data d = random_data(4000, 1000, 8);
  write_shard(path("a.h5"), d.tokens, d.doc_offsets, info_for(1000));
  const int64_t at = token_data_offset(path("a.h5")) + 2 * 3001;  // the low byte of token 3001
  {
    std::fstream f(path("a.h5"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(at);
    const char byte = static_cast<char>(f.get() ^ 0x01);  // stays below the vocabulary
    f.seekp(at);
    f.put(byte);
  }
  expect_error([&] { ShardReader r(path("a.h5")); },
               {path("a.h5"), "checksum mismatch", "corrupt"});
}

TEST_F(ShardTest, RefusesAnotherFormatVersion) {
  write_shard(path("a.h5"), {1, 2}, {0, 2}, info_for(10));
  set_int_attribute(path("a.h5"), "format_version", 2);
  expect_error([&] { ShardReader r(path("a.h5")); },
               {path("a.h5"), "format_version is 2", "reads version 1"});
}

TEST_F(ShardTest, RefusesMissingDatasetsAndAttributes) {
  for (const char* name : {"tokens", "doc_offsets"}) {
    const std::string p = path(std::string(name) + ".h5");
    write_shard(p, {1, 2}, {0, 2}, info_for(10));
    edit_file(p, [&](hid_t f) { EXPECT_GE(H5Ldelete(f, name, H5P_DEFAULT), 0); });
    expect_error([&] { ShardReader r(p); }, {p, "missing dataset /" + std::string(name)});
  }
  for (const char* name : {"vocab_size", "tokenizer", "checksum", "split"}) {
    const std::string p = path(std::string(name) + ".h5");
    write_shard(p, {1, 2}, {0, 2}, info_for(10));
    edit_file(p, [&](hid_t f) { EXPECT_GE(H5Adelete(f, name), 0); });
    expect_error([&] { ShardReader r(p); }, {p, "missing attribute " + std::string(name)});
  }
}

TEST_F(ShardTest, RefusesSizesThatDisagree) {
  const std::string p = path("a.h5");
  auto fresh = [&] { write_shard(p, {1, 2, 3, 4, 5}, {0, 2, 5}, info_for(10)); };
  fresh();
  set_int_attribute(p, "token_count", 6);
  expect_error([&] { ShardReader r(p); }, {p, "token_count is 6", "/tokens holds 5"});
  fresh();
  set_int_attribute(p, "doc_count", 3);
  expect_error([&] { ShardReader r(p); }, {p, "doc_count is 3", "/doc_offsets has 3 entries"});
  fresh();
  set_doc_offsets(p, {1, 2, 5});
  expect_error([&] { ShardReader r(p); }, {p, "doc_offsets starts at 1"});
  fresh();
  set_doc_offsets(p, {0, 4, 3});
  expect_error([&] { ShardReader r(p); }, {p, "doc_offsets decreases"});
  fresh();
  set_doc_offsets(p, {0, 2, 4});
  expect_error([&] { ShardReader r(p); }, {p, "doc_offsets ends at 4", "token_count is 5"});
}

TEST_F(ShardTest, RefusesAVocabularyThatDoesNotHoldTheTokens) {
  const std::string p = path("a.h5");
  write_shard(p, {1, 2, 9, 3}, {0, 4}, info_for(10));
  set_int_attribute(p, "vocab_size", 5);  // the checksum still holds: only the range check sees it
  expect_error([&] { ShardReader r(p); }, {p, "token 2 is 9", "[0, 5)"});
  set_int_attribute(p, "vocab_size", 0);
  expect_error([&] { ShardReader r(p); }, {p, "vocab_size is 0"});
}

}  // namespace
}  // namespace hymba::test
