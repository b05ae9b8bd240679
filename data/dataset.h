// The shard files a run trains and evaluates on, from the `data:` config section. A text corpus
// (data.format: text) is prepared into shards under data.cache_dir the first time it is used;
// later runs find the finished preparation and start at once.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "config/config.h"

namespace hymba {

struct DatasetShards {
  std::vector<std::string> train, val;  // val is empty without data.val
  std::string tokenizer;                // identity the shards must carry ("" = not checked)
};

DatasetShards dataset_shards(const DataConfig& data, std::ostream& log);

// The folder a text corpus is prepared into: cache_dir/<corpus name>-<16 hex digits of a hash
// of the corpus path, the tokenizer identity and the split>.
std::string prepared_folder(const DataConfig& data, const std::string& corpus,
                            const std::string& tokenizer_identity, const std::string& split);

}  // namespace hymba
