// hymba-prepare --tokenizer DIR --out DIR [options] INPUT...
//   Tokenizes text or JSONL inputs (files, folders, "-" for stdin; plain, gzip or xz) into HDF5
//   shards for training. See data/prepare.h for the output folder and how resuming works.
#include <exception>
#include <iostream>
#include <string>

#include "core/cli.h"
#include "data/prepare.h"

namespace {

const char* kUsage =
    "usage: hymba-prepare --tokenizer DIR --out DIR [options] INPUT...\n"
    "  INPUT                 a file (plain, .gz or .xz), a folder (all files below it), or - (stdin)\n"
    "  --tokenizer DIR       encoder.json + vocab.bpe (e.g. data/tokenizers/austen-32k)\n"
    "  --out DIR             output folder: train-*.h5, val-*.h5, manifest.yaml\n"
    "  --format F            auto (default: .jsonl names are JSONL), text or jsonl\n"
    "  --field NAME          JSONL field holding the text (default: text)\n"
    "  --split S             auto (default: by document hash), train or val (all documents)\n"
    "  --val-fraction X      share of documents for validation with --split auto (default 0.01)\n"
    "  --shard-tokens N      tokens per shard (default 100000000)\n"
    "  --threads N           tokenizer threads (default: all cores)\n"
    "Text inputs: a line holding only <|endoftext|> separates documents. An interrupted run\n"
    "resumes where it stopped when started again with the same arguments.\n";

}  // namespace

int main(int argc, char** argv) {
  hymba::PrepareOptions o;
  hymba::CommandLine cl(argc, argv, kUsage);
  for (std::string arg; cl.next(arg);) {
    if (arg == "--tokenizer") {
      o.tokenizer = cl.value();
    } else if (arg == "--out") {
      o.out = cl.value();
    } else if (arg == "--format") {
      const std::string f = cl.value();
      if (f == "auto") o.format = hymba::InputFormat::automatic;
      else if (f == "text") o.format = hymba::InputFormat::text;
      else if (f == "jsonl") o.format = hymba::InputFormat::jsonl;
      else cl.usage_error("--format " + f + ": must be auto, text or jsonl");
    } else if (arg == "--field") {
      o.jsonl_field = cl.value();
    } else if (arg == "--split") {
      o.split = cl.value();
    } else if (arg == "--val-fraction") {
      o.val_fraction = cl.number<double>(0.0);
    } else if (arg == "--shard-tokens") {
      o.shard_tokens = cl.number<int64_t>(1);
    } else if (arg == "--threads") {
      o.threads = cl.number<int>(1);
    } else if (arg.size() > 1 && arg.starts_with("--")) {
      cl.unknown(arg);
    } else {
      o.inputs.push_back(arg);
    }
  }
  if (o.tokenizer.empty() || o.out.empty() || o.inputs.empty()) {
    cl.usage_error("--tokenizer, --out and at least one INPUT are required");
  }
  try {
    const hymba::PrepareSummary s = hymba::prepare(o, &std::cerr);
    if (s.already_done) {
      std::cout << o.out << ": already prepared (" << s.tokens[0] << " train / " << s.tokens[1]
                << " val tokens in " << s.shards << " shards)\n";
      return 0;
    }
    if (s.resumed_at_document > 0) std::cout << "resumed at document " << s.resumed_at_document << "\n";
    std::cout << "prepared " << o.out << ": train " << s.documents[0] << " documents / " << s.tokens[0]
              << " tokens, val " << s.documents[1] << " documents / " << s.tokens[1] << " tokens, "
              << s.shards << " shards, " << s.seconds << " s\n";
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
