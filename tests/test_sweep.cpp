// The ablation sweep end to end on the tiny variants of every comparison: hymba-sweep trains each
// (a language run and a recall run) and writes one table.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/test_util.h"

namespace hymba::test {
namespace {

namespace fs = std::filesystem;

using Sweep = TempDirTest;

TEST_F(Sweep, TinyAblationsRunEndToEndIntoOneTable) {
  const std::string src = HYMBA_SOURCE_DIR;
  const std::vector<std::string> names = {"hybrid",         "attention-only", "mamba-only",
                                          "no-meta-tokens", "all-global",     "no-kv-reuse"};
  std::string command = std::string(HYMBA_BINARY_DIR) + "/bin/hymba-sweep --out " + path("sweep") +
                        " --set train.steps=12 --set train.log_every=12 --set eval.batches=2 --recall-steps 6" +
                        " --set data.cache_dir=" + test_cache_dir();
  for (const std::string& n : names) command += " " + src + "/configs/ablations/tiny/" + n + ".yaml";
  const int status = std::system((command + " > " + path("log.txt") + " 2>&1").c_str());
  std::ifstream log_file(path("log.txt"));
  const std::string log((std::istreambuf_iterator<char>(log_file)), std::istreambuf_iterator<char>());
  ASSERT_EQ(status, 0) << log;

  std::ifstream csv(path("sweep/table.csv"));
  std::string header, line;
  std::getline(csv, header);
  EXPECT_EQ(header, "config,parameters,tokens_per_sec,train_loss,val_loss,recall_accuracy");
  std::vector<std::vector<std::string>> rows;
  while (std::getline(csv, line)) {
    std::vector<std::string> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(c);
    rows.push_back(cells);
  }
  ASSERT_EQ(rows.size(), names.size()) << log;
  for (size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), 6u) << line;
    EXPECT_EQ(rows[i][0], names[i]);
    for (size_t c = 1; c < 5; ++c) EXPECT_GT(std::stod(rows[i][c]), 0.0) << names[i] << " column " << c;
    EXPECT_LT(std::stod(rows[i][3]), 7.5) << names[i];  // training loss below ln 1024 + margin
    // An accuracy (after 6 steps it is near chance, 1/64, and may be 0).
    EXPECT_GE(std::stod(rows[i][5]), 0.0) << names[i];
    EXPECT_LE(std::stod(rows[i][5]), 1.0) << names[i];
  }
  // The variants are different models: attention-only and mamba-only drop a branch's parameters.
  EXPECT_LT(std::stoll(rows[1][1]), std::stoll(rows[0][1]));
  EXPECT_LT(std::stoll(rows[2][1]), std::stoll(rows[0][1]));
  EXPECT_TRUE(fs::exists(path("sweep/table.md")));
  EXPECT_TRUE(fs::exists(path("sweep/mamba-only-recall/metrics.jsonl")));
}

}  // namespace
}  // namespace hymba::test
