// Scaffolding shared by tests that touch files: a fresh temporary folder per test, and a check
// that a call fails with a hymba::Error whose message names what it should.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <utility>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>

#include "core/error.h"
#include "cpu/vocab_range.h"

namespace hymba::test {

// Runs `f`, which must throw an Error whose message contains every one of `parts`.
inline void expect_error(const std::function<void()>& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << *parts.begin() << "'";
  } catch (const Error& e) {
    for (const std::string& part : parts) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  }
}

// Runs a shell command; returns its exit status and its stdout + stderr.
inline std::pair<int, std::string> run_command(const std::string& command) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

// Where training tests prepare the bundled corpus: one folder shared by every test and test
// process (preparation holds a file lock), outside the source tree.
inline std::string test_cache_dir() {
  return (std::filesystem::temp_directory_path() / "hymba_test_cache").string();
}

// A fresh folder per test (named after the test and the process), removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  TempDirTest()
      : dir_(std::filesystem::temp_directory_path() /
             ("hymba_test_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->test_suite_name()) +
              "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name() + "_" +
              std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~TempDirTest() override { std::filesystem::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes `bytes` to path(name), creating folders on the way.
  std::string write(const std::string& name, const std::string& bytes) const {
    std::filesystem::create_directories(std::filesystem::path(path(name)).parent_path());
    std::ofstream f(path(name), std::ios::binary);
    f << bytes;
    EXPECT_TRUE(f.good()) << path(name);
    return path(name);
  }

  std::filesystem::path dir_;
};

// For tests of the vocabulary-parallel kernels, ranks simulated in one process: the ids rank q of
// `ranks` holds in chunks of ceil(V / ranks), so the last is short (or empty when V is small).
// (The model's chunks are rounded up to 64 rows, model/dims.h; the kernels take any range.)
inline cpu::VocabRange split_vocab(int64_t V, int64_t ranks, int64_t q) {
  const int64_t c = (V + ranks - 1) / ranks;
  return {std::min(V, q * c), std::min(V, (q + 1) * c)};
}

}  // namespace hymba::test
