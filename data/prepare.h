// Data preparation: documents from text or JSONL inputs, tokenized in parallel, written as HDF5
// shards (data/shard.h) into an output folder:
//
//   OUT/train-00000.h5 ...   training documents
//   OUT/val-00000.h5 ...     validation documents (a deterministic share, by a hash of the text)
//   OUT/prepare.yaml         the settings (checked when a prepare is resumed)
//   OUT/progress.yaml        cuts finished so far and the next input document (for resuming)
//   OUT/manifest.yaml        written last: documents and tokens per split; its presence means done
//
// Shards are cut together: once the tokens gathered since the last cut reach shard_tokens, the
// val shard (if any) and then the train shard are written, each through a temporary name, and
// progress.yaml is updated. An interrupted prepare resumes at the last cut: finished shards are
// kept, a half-written one never has a final name, and the result equals an uninterrupted run.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "data/document_reader.h"

namespace hymba {

struct PrepareOptions {
  std::vector<std::string> inputs;  // files, folders, "-" for stdin
  InputFormat format = InputFormat::automatic;
  std::string jsonl_field = "text";
  std::string tokenizer;            // tokenizer folder (encoder.json + vocab.bpe)
  std::string out;                  // output folder
  std::string split = "auto";       // auto: by hash with val_fraction; train or val: all documents
  double val_fraction = 0.01;
  int64_t shard_tokens = 100'000'000;
  int threads = 0;                  // 0 = all cores
  // Stop after this many input documents (0 = all) without finishing: what is past the last cut
  // is dropped, exactly as after a crash, and a later run resumes there. Not part of the settings
  // a resume compares, so a subset can be prepared first and completed later.
  int64_t max_documents = 0;
};

struct PrepareSummary {
  int64_t documents[2] = {0, 0};  // train, val
  int64_t tokens[2] = {0, 0};
  int64_t shards = 0;
  int64_t resumed_at_document = 0;  // 0 for a fresh start
  uint64_t bytes = 0;               // input bytes read in this call
  double seconds = 0;
  bool already_done = false;        // the output folder already held a finished prepare
  bool finished = false;            // this call completed the prepare (manifest written)
};

// Runs (or resumes, or finds finished) a prepare. Progress lines go to `progress` if not null.
PrepareSummary prepare(const PrepareOptions& options, std::ostream* progress);

// True when `out` holds a finished prepare (its manifest.yaml exists).
bool prepare_done(const std::string& out);

// One long document cut into pieces of about `target` bytes at safe_split_point (pretokenize.h), so
// the pieces can be encoded in parallel and concatenated to exactly the whole text's ids.
std::vector<std::string_view> split_for_encoding(std::string_view text, size_t target);

}  // namespace hymba
