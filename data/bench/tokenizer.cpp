// bench-tokenizer TOKENIZER_DIR CORPUS [--threads N] [--repeat R]
//   Encoding speed: MB/s and tokens/s on one thread (per core) and on N threads (default: all
//   cores), each the best of R runs (default 3). The corpus is cut into parts at safe split
//   points and the parts are shared out to the threads. Every run starts new threads, so each
//   begins with empty piece caches, as a fresh data-preparation worker would.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "data/pretokenize.h"
#include "data/text_file.h"
#include "data/tokenizer.h"

namespace {

const char* kUsage =
    "usage: bench-tokenizer TOKENIZER_DIR CORPUS [--threads N] [--repeat R]\n"
    "  TOKENIZER_DIR  a folder with encoder.json and vocab.bpe, e.g. data/tokenizers/gpt2\n"
    "  CORPUS         a text file (plain, gzip or xz), e.g. data/austen/train.txt.gz\n"
    "  --threads N    threads of the parallel run (default: all cores)\n"
    "  --repeat R     runs per measurement, the best counts (default 3)\n";

constexpr size_t kPartBytes = size_t(64) << 10;  // small enough to balance 2 to 128 threads

std::vector<std::string_view> cut_into_parts(std::string_view text) {
  std::vector<std::string_view> parts;
  while (!text.empty()) {
    const size_t cut = text.size() > kPartBytes ? hymba::safe_split_point(text, kPartBytes) : text.size();
    parts.push_back(text.substr(0, cut));
    text.remove_prefix(cut);
  }
  return parts;
}

struct Run {
  double seconds;
  std::vector<std::vector<int32_t>> ids;  // by part
};

Run encode_parts(const hymba::Tokenizer& tok, const std::vector<std::string_view>& parts,
                 int threads) {
  Run run{0, std::vector<std::vector<int32_t>>(parts.size())};
  std::atomic<size_t> next{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t p; (p = next++) < parts.size();) tok.encode(parts[p], run.ids[p]);
    });
  }
  for (auto& th : pool) th.join();
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> paths;
  int threads = int(std::max(1u, std::thread::hardware_concurrency()));
  int repeat = 3;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if ((arg == "--threads" || arg == "--repeat") && i + 1 < argc) {
      const int v = std::atoi(argv[++i]);
      if (v < 1) {
        std::fprintf(stderr, "error: %s needs a positive integer\n%s", arg.c_str(), kUsage);
        return 2;
      }
      (arg == "--threads" ? threads : repeat) = v;
    } else if (arg.starts_with("--")) {
      std::fprintf(stderr, "error: unknown option %s\n%s", arg.c_str(), kUsage);
      return 2;
    } else {
      paths.push_back(arg);
    }
  }
  if (paths.size() != 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  try {
    const hymba::Tokenizer tok = hymba::Tokenizer::load(paths[0]);
    const std::string text = hymba::read_text_file(paths[1]);
    const std::vector<std::string_view> parts = cut_into_parts(text);
    const double mb = double(text.size()) / 1e6;
    std::printf("tokenizer %s (%lld ids), corpus %s: %.2f MB in %zu parts\n", paths[0].c_str(),
                static_cast<long long>(tok.vocab_size()), paths[1].c_str(), mb, parts.size());
    std::vector<std::vector<int32_t>> reference;
    for (int n : {1, threads}) {
      Run best{1e30, {}};
      for (int r = 0; r < repeat; ++r) {
        Run run = encode_parts(tok, parts, n);
        if (run.seconds < best.seconds) best = std::move(run);
      }
      if (reference.empty()) reference = best.ids;
      if (best.ids != reference) {
        std::fprintf(stderr, "error: %d threads encoded differently from 1 thread\n", n);
        return 1;
      }
      size_t tokens = 0;
      for (const auto& ids : best.ids) tokens += ids.size();
      std::printf("%3d thread%s %8.2f MB/s %8.2f M tokens/s  (%zu tokens, %.2f bytes/token)\n", n,
                  n == 1 ? ": " : "s:", mb / best.seconds, double(tokens) / 1e6 / best.seconds,
                  tokens, double(text.size()) / double(tokens));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
