#include "data/dataset.h"

#include <cstdio>
#include <filesystem>
#include <ostream>

#include "core/rng.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/tokenizer.h"

namespace hymba {

namespace fs = std::filesystem;

std::string prepared_folder(const DataConfig& data, const std::string& corpus,
                            const std::string& tokenizer_identity, const std::string& split) {
  const std::string key = fs::absolute(corpus).lexically_normal().string() + "\n" + tokenizer_identity + "\n" + split;
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash_name(key)));
  std::string name = fs::path(corpus).filename().string();
  for (const char* ext : {".gz", ".xz", ".txt", ".jsonl"}) {
    if (name.ends_with(ext)) name.resize(name.size() - std::string(ext).size());
  }
  return (fs::path(data.cache_dir) / (name + "-" + hex)).string();
}

namespace {

// Prepares `corpus` as one split (every document to it) unless already prepared.
std::vector<std::string> prepared_shards(const DataConfig& data, const Tokenizer& tok,
                                         const std::string& corpus, const std::string& split,
                                         std::ostream& log) {
  PrepareOptions o;
  o.inputs = {corpus};
  o.tokenizer = data.tokenizer;
  o.out = prepared_folder(data, corpus, tok.identity(), split);
  o.split = split;
  if (!prepare_done(o.out)) log << "data: preparing " << corpus << " into " << o.out << "\n";
  const PrepareSummary s = prepare(o, &log);
  const int which = split == "train" ? 0 : 1;
  log << "data: " << split << " " << s.tokens[which] << " tokens in " << s.shards << " shards ("
      << o.out << ")\n";
  return find_shards((fs::path(o.out) / (split + "-")).string());
}

}  // namespace

DatasetShards dataset_shards(const DataConfig& data, std::ostream& log) {
  DatasetShards d;
  if (data.format == "shards") {
    d.train = find_shards(data.train);
    if (!data.val.empty()) d.val = find_shards(data.val);
    if (!data.tokenizer.empty()) d.tokenizer = Tokenizer::load(data.tokenizer).identity();
    return d;
  }
  const Tokenizer tok = Tokenizer::load(data.tokenizer);
  d.tokenizer = tok.identity();
  d.train = prepared_shards(data, tok, data.train, "train", log);
  if (!data.val.empty()) d.val = prepared_shards(data, tok, data.val, "val", log);
  return d;
}

}  // namespace hymba
