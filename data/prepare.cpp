#include "data/prepare.h"

#include <omp.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <ostream>

#include "core/error.h"
#include "core/files.h"
#include "core/rng.h"
#include "data/pretokenize.h"
#include "data/shard.h"
#include "data/tokenizer.h"

namespace hymba {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

enum Split { kTrain = 0, kVal = 1 };
const char* const kSplitNames[2] = {"train", "val"};

// Documents are tokenized a chunk at a time: enough text to keep every thread busy, little
// enough to bound memory. A document longer than kLongDocument is cut into pieces of about
// kPiece bytes (split_for_encoding) so that one long document also uses every thread.
constexpr size_t kChunkBytes = 16 << 20;
constexpr size_t kChunkDocuments = 4096;
constexpr size_t kLongDocument = 1 << 20;
constexpr size_t kPiece = 256 << 10;

std::string shard_path(const std::string& out, int split, int64_t cut) {
  char name[32];
  std::snprintf(name, sizeof name, "%s-%05lld.h5", kSplitNames[split], static_cast<long long>(cut));
  return (fs::path(out) / name).string();
}

// The settings a resumed prepare must share with the one it continues.
std::string settings_text(const PrepareOptions& o, const Tokenizer& tok) {
  YAML::Emitter y;
  y << YAML::BeginMap;
  y << YAML::Key << "inputs" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const std::string& in : o.inputs) y << (in == "-" ? in : fs::absolute(in).lexically_normal().string());
  y << YAML::EndSeq;
  y << YAML::Key << "format" << YAML::Value
    << (o.format == InputFormat::automatic ? "auto" : o.format == InputFormat::text ? "text" : "jsonl");
  y << YAML::Key << "jsonl_field" << YAML::Value << o.jsonl_field;
  y << YAML::Key << "tokenizer" << YAML::Value << tok.identity();
  y << YAML::Key << "vocab_size" << YAML::Value << tok.vocab_size();
  y << YAML::Key << "split" << YAML::Value << o.split;
  y << YAML::Key << "val_fraction" << YAML::Value << o.val_fraction;
  y << YAML::Key << "shard_tokens" << YAML::Value << o.shard_tokens;
  y << YAML::Key << "shard_format_version" << YAML::Value << kShardFormatVersion;
  y << YAML::EndMap;
  return std::string(y.c_str()) + "\n";
}

// Everything a cut records, so a resumed prepare continues the counts exactly.
struct Progress {
  int64_t cuts = 0;
  int64_t next_document = 0;
  int64_t documents[2] = {0, 0};
  int64_t tokens[2] = {0, 0};
  int64_t shards = 0;

  std::string yaml() const {
    YAML::Emitter y;
    y << YAML::BeginMap << YAML::Key << "cuts" << YAML::Value << cuts << YAML::Key
      << "next_document" << YAML::Value << next_document << YAML::Key << "shards" << YAML::Value
      << shards;
    for (int s : {kTrain, kVal}) {
      y << YAML::Key << kSplitNames[s] << YAML::Value << YAML::BeginMap << YAML::Key << "documents"
        << YAML::Value << documents[s] << YAML::Key << "tokens" << YAML::Value << tokens[s]
        << YAML::EndMap;
    }
    y << YAML::EndMap;
    return std::string(y.c_str()) + "\n";
  }

  void copy_counts(PrepareSummary& s) const {
    for (int split : {kTrain, kVal}) s.documents[split] = documents[split], s.tokens[split] = tokens[split];
    s.shards = shards;
  }

  static Progress load(const std::string& path) {
    Progress p;
    try {
      const YAML::Node n = YAML::LoadFile(path);
      p.cuts = n["cuts"].as<int64_t>();
      p.next_document = n["next_document"].as<int64_t>();
      p.shards = n["shards"].as<int64_t>();
      for (int s : {kTrain, kVal}) {
        p.documents[s] = n[kSplitNames[s]]["documents"].as<int64_t>();
        p.tokens[s] = n[kSplitNames[s]]["tokens"].as<int64_t>();
      }
    } catch (const YAML::Exception& e) {
      fail(path, ": unreadable progress record (", e.what(), "); delete the folder to start over");
    }
    return p;
  }
};

// Tokens and document offsets gathered for one split since the last cut.
struct Pending {
  std::vector<int32_t> tokens;
  std::vector<int64_t> doc_offsets = {0};
};

class ProgressLine {
 public:
  explicit ProgressLine(std::ostream* out)
      : out_(out), tty_(out == &std::cerr && isatty(STDERR_FILENO)), start_(Clock::now()) {}

  // Percent done from the input files' bytes (compressed, if they are); rates in text bytes.
  void update(const DocumentReader& reader, uint64_t text_bytes, const Progress& p, bool last) {
    if (!out_) return;
    const auto now = Clock::now();
    const double since_print = std::chrono::duration<double>(now - last_print_).count();
    if (!last && since_print < (tty_ ? 0.5 : 10.0)) return;
    last_print_ = now;
    const double s = std::max(1e-9, std::chrono::duration<double>(now - start_).count());
    const double mb = double(text_bytes) / 1e6;
    const int64_t tokens = p.tokens[kTrain] + p.tokens[kVal] - tokens_at_start_;
    char line[256];
    const double total = double(reader.bytes_total());
    std::snprintf(line, sizeof line,
                  "prepare: %5.1f%% | %.1f MB of text, %.1f MB/s | %.2f M tokens, %.2f M tok/s | "
                  "%lld documents | %lld shards",
                  total > 0 ? 100.0 * double(reader.bytes_read()) / total : 0.0, mb, mb / s,
                  double(tokens) / 1e6, double(tokens) / 1e6 / s,
                  static_cast<long long>(p.documents[kTrain] + p.documents[kVal]),
                  static_cast<long long>(p.shards));
    *out_ << (tty_ ? "\r" : "") << line << (tty_ && !last ? "" : "\n") << std::flush;
  }
  void set_start_tokens(int64_t t) { tokens_at_start_ = t; }

 private:
  std::ostream* out_;
  bool tty_;
  Clock::time_point start_, last_print_{};
  int64_t tokens_at_start_ = 0;
};

// Which split a document goes to: a pure function of its text, so the split is reproducible.
int split_of(const std::string& doc, const PrepareOptions& o) {
  if (o.split == "train") return kTrain;
  if (o.split == "val") return kVal;
  const double u = double(hash_name(doc) >> 11) * (1.0 / 9007199254740992.0);
  return u < o.val_fraction ? kVal : kTrain;
}

// ids of every document of the chunk, encoded in parallel.
std::vector<std::vector<int32_t>> encode_chunk(const std::vector<std::string>& docs,
                                               const Tokenizer& tok, int threads) {
  struct Piece {
    size_t doc;
    std::string_view text;
  };
  std::vector<Piece> pieces;
  for (size_t d = 0; d < docs.size(); ++d) {
    if (docs[d].size() > kLongDocument) {
      for (std::string_view p : split_for_encoding(docs[d], kPiece)) pieces.push_back({d, p});
    } else {
      pieces.push_back({d, docs[d]});
    }
  }
  std::vector<std::vector<int32_t>> piece_ids(pieces.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (size_t i = 0; i < pieces.size(); ++i) tok.encode(pieces[i].text, piece_ids[i]);
  std::vector<std::vector<int32_t>> ids(docs.size());
  for (size_t i = 0; i < pieces.size(); ++i) {
    std::vector<int32_t>& dst = ids[pieces[i].doc];
    dst.insert(dst.end(), piece_ids[i].begin(), piece_ids[i].end());
  }
  return ids;
}

// After a crash: temporary files, and shards of cuts that progress.yaml does not record (the val
// shard of a cut whose train shard was never written) are dropped, so the folder holds exactly
// what the resumed run continues from.
void remove_unfinished_shards(const std::string& out, int64_t cuts) {
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string name = e.path().filename().string();
    long long cut = -1;
    char split[8] = {};
    const bool shard = std::sscanf(name.c_str(), "%5[a-z]-%lld.h5", split, &cut) == 2 &&
                       name.ends_with(".h5") && (std::string(split) == "train" || std::string(split) == "val");
    if (name.ends_with(".tmp") || (shard && cut >= cuts)) fs::remove(e.path());
  }
}

void check_options(const PrepareOptions& o) {
  if (o.inputs.empty()) fail("prepare: no inputs");
  if (o.out.empty()) fail("prepare: no output folder");
  if (o.tokenizer.empty()) fail("prepare: no tokenizer folder");
  if (o.split != "auto" && o.split != "train" && o.split != "val") {
    fail("prepare: split \"", o.split, "\" must be auto, train or val");
  }
  if (!(o.val_fraction >= 0 && o.val_fraction <= 1)) {
    fail("prepare: val fraction ", o.val_fraction, " must be in [0, 1]");
  }
  if (o.shard_tokens < 1) fail("prepare: shard tokens ", o.shard_tokens, " must be >= 1");
}

}  // namespace

bool prepare_done(const std::string& out) { return fs::exists(fs::path(out) / "manifest.yaml"); }

std::vector<std::string_view> split_for_encoding(std::string_view text, size_t target) {
  std::vector<std::string_view> pieces;
  size_t begin = 0;
  while (text.size() - begin > target) {
    const size_t cut = safe_split_point(text, begin + target);
    if (cut >= text.size()) break;
    pieces.push_back(text.substr(begin, cut - begin));
    begin = cut;
  }
  pieces.push_back(text.substr(begin));
  return pieces;
}

PrepareSummary prepare(const PrepareOptions& o, std::ostream* progress) {
  check_options(o);
  const auto start = Clock::now();
  PrepareSummary summary;
  const Tokenizer tok = Tokenizer::load(o.tokenizer);
  if (tok.eot_id() < 0) fail(o.tokenizer, ": the tokenizer has no <|endoftext|> token to separate documents");
  fs::create_directories(o.out);
  const FileLock lock((fs::path(o.out) / ".lock").string());  // one prepare per folder at a time

  const fs::path settings_path = fs::path(o.out) / "prepare.yaml";
  const fs::path progress_path = fs::path(o.out) / "progress.yaml";
  const std::string settings = settings_text(o, tok);
  Progress p;
  if (fs::exists(settings_path)) {
    if (read_all_text(settings_path.string()) != settings) {
      fail(o.out, ": holds a prepare with other settings (see its prepare.yaml); remove the folder or choose another");
    }
    if (prepare_done(o.out)) {
      summary.already_done = true;
      const Progress done = Progress::load(progress_path.string());
      done.copy_counts(summary);
      return summary;
    }
    if (fs::exists(progress_path)) p = Progress::load(progress_path.string());
  } else {
    write_file_atomically(settings_path.string(), settings);
  }
  remove_unfinished_shards(o.out, p.cuts);
  summary.resumed_at_document = p.next_document;

  DocumentReader reader(o.inputs, o.format, o.jsonl_field);
  std::string doc;
  for (int64_t d = 0; d < p.next_document; ++d) {
    if (!reader.next(doc)) fail(o.out, ": progress.yaml says ", p.next_document, " documents were done, but the inputs hold only ", d);
  }
  ProgressLine line(progress);
  line.set_start_tokens(p.tokens[kTrain] + p.tokens[kVal]);
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();

  Pending pending[2];
  int64_t cut_begin = p.next_document, since_cut = 0;
  auto cut = [&] {
    // val first, train last: see prepare.h.
    for (int s : {kVal, kTrain}) {
      if (pending[s].tokens.empty()) continue;
      ShardInfo info;
      info.vocab_size = tok.vocab_size();
      info.tokenizer = tok.identity();
      info.split = kSplitNames[s];
      info.source_doc_begin = cut_begin;
      info.source_doc_end = p.next_document;
      write_shard(shard_path(o.out, s, p.cuts), pending[s].tokens, pending[s].doc_offsets, info);
      ++p.shards;
      pending[s] = Pending{};
    }
    ++p.cuts;
    write_file_atomically(progress_path.string(), p.yaml());
    cut_begin = p.next_document;
    since_cut = 0;
  };

  for (bool more = true; more;) {
    std::vector<std::string> chunk;
    size_t chunk_bytes = 0;
    while (chunk_bytes < kChunkBytes && chunk.size() < kChunkDocuments &&
           (o.max_documents == 0 || p.next_document + int64_t(chunk.size()) < o.max_documents) &&
           (more = reader.next(doc))) {
      chunk_bytes += doc.size();
      chunk.push_back(std::move(doc));
    }
    const std::vector<std::vector<int32_t>> ids = encode_chunk(chunk, tok, threads);
    for (size_t d = 0; d < chunk.size(); ++d) {
      const int s = split_of(chunk[d], o);
      Pending& dst = pending[s];
      dst.tokens.insert(dst.tokens.end(), ids[d].begin(), ids[d].end());
      dst.tokens.push_back(tok.eot_id());
      dst.doc_offsets.push_back(static_cast<int64_t>(dst.tokens.size()));
      const int64_t n = static_cast<int64_t>(ids[d].size()) + 1;
      p.tokens[s] += n;
      ++p.documents[s];
      ++p.next_document;
      since_cut += n;
      if (since_cut >= o.shard_tokens) cut();
    }
    summary.bytes += chunk_bytes;
    line.update(reader, summary.bytes, p, false);
    if (o.max_documents > 0 && p.next_document >= o.max_documents) {
      p.copy_counts(summary);
      summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
      return summary;  // stopped early, unfinished (see PrepareOptions::max_documents)
    }
  }
  if (since_cut > 0) cut();
  line.update(reader, summary.bytes, p, true);

  YAML::Emitter manifest;
  manifest << YAML::BeginMap << YAML::Key << "tokenizer" << YAML::Value << tok.identity()
           << YAML::Key << "vocab_size" << YAML::Value << tok.vocab_size() << YAML::Key << "shards"
           << YAML::Value << p.shards;
  for (int s : {kTrain, kVal}) {
    manifest << YAML::Key << kSplitNames[s] << YAML::Value << YAML::BeginMap << YAML::Key
             << "documents" << YAML::Value << p.documents[s] << YAML::Key << "tokens" << YAML::Value
             << p.tokens[s] << YAML::EndMap;
  }
  manifest << YAML::EndMap;
  write_file_atomically((fs::path(o.out) / "manifest.yaml").string(), std::string(manifest.c_str()) + "\n");

  p.copy_counts(summary);
  summary.finished = true;
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

}  // namespace hymba
