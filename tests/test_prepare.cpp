// Data preparation: documents from text/JSONL inputs (plain, gzip, xz) into shards that hold
// exactly the tokenizer's ids, a reproducible split, and resuming after an interruption.
#include <gtest/gtest.h>
#ifdef HYMBA_HAVE_LZMA
#include <lzma.h>
#endif
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "tests/test_util.h"
#include "data/byte_stream.h"
#include "data/document_reader.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/shard.h"
#include "data/text_file.h"
#include "data/tokenizer.h"

namespace hymba::test {
namespace {

namespace fs = std::filesystem;

const std::string kTokenizer = std::string(HYMBA_SOURCE_DIR) + "/data/tokenizers/austen-1k";

class Prepare : public TempDirTest {
 protected:
  // 40 documents of varied length separated as in corpus-en.
  static std::vector<std::string> documents() {
    std::vector<std::string> docs;
    for (int i = 0; i < 40; ++i) {
      std::string d = "Document " + std::to_string(i) + ": It is a truth universally acknowledged";
      for (int j = 0; j < i % 7; ++j) d += "\nthat a single man in possession of a good fortune, " + std::to_string(j * i);
      docs.push_back(d);
    }
    return docs;
  }

  static std::string as_text(const std::vector<std::string>& docs) {
    std::string text;
    for (const std::string& d : docs) text += d + "\n<|endoftext|>\n";
    return text;
  }

  // Every document of every shard of `split`, decoded, in order.
  static std::vector<std::vector<int32_t>> shard_documents(const std::string& out, const std::string& split) {
    std::vector<std::vector<int32_t>> docs;
    for (const std::string& f : find_shards((fs::path(out) / (split + "-")).string())) {
      ShardReader r(f);
      const auto& off = r.doc_offsets();
      for (size_t d = 0; d + 1 < off.size(); ++d) {
        std::vector<int32_t> ids(off[d + 1] - off[d]);
        r.read_tokens(off[d], static_cast<int64_t>(ids.size()), ids.data());
        docs.push_back(ids);
      }
    }
    return docs;
  }
};

std::string gzip(const std::string& s) {
  uLongf n = compressBound(s.size()) + 32;
  std::string out(n, '\0');
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);  // +16: gzip wrapper
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
  z.avail_in = static_cast<uInt>(s.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

#ifdef HYMBA_HAVE_LZMA
std::string xz(const std::string& s) {
  std::string out(lzma_stream_buffer_bound(s.size()), '\0');
  size_t pos = 0;
  lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr, reinterpret_cast<const uint8_t*>(s.data()), s.size(),
                          reinterpret_cast<uint8_t*>(out.data()), &pos, out.size());
  out.resize(pos);
  return out;
}
#else
// Without xz support the tests use gzip where they would use xz (the formats share one path).
std::string xz(const std::string& s) { return gzip(s); }
#endif

TEST_F(Prepare, ByteStreamDecodesPlainGzipAndXzTheSame) {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i * 7919 % 10007) + "\n";
  EXPECT_EQ(read_text_file(write("a.txt", text)), text);
  EXPECT_EQ(read_text_file(write("a.gz", gzip(text))), text);
  EXPECT_EQ(read_text_file(write("a.xz", xz(text))), text);
  EXPECT_EQ(read_text_file(write("two.gz", gzip("first ") + gzip("second"))), "first second");
}

TEST_F(Prepare, DamagedCompressedInputNamesTheFile) {
  std::string text(100000, 'x');
  for (size_t i = 0; i < text.size(); i += 13) text[i] = char('a' + i % 26);
  for (const auto& [name, data] : {std::pair{"cut.gz", gzip(text)}, std::pair{"cut.xz", xz(text)}}) {
    const std::string f = write(name, data.substr(0, data.size() / 2));
    try {
      read_text_file(f);
      FAIL() << name << ": no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(f + ": truncated"), std::string::npos) << e.what();
    }
  }
}

TEST_F(Prepare, DocumentsSplitAtSeparatorLinesAndJsonlFields) {
  const auto docs = documents();
  write("in/b.txt.gz", gzip(as_text({docs[2], docs[3]})));
  write("in/a.txt", as_text({docs[0], docs[1]}));
  write("in/c.jsonl.xz", xz("{\"text\": \"json one\", \"id\": 1}\n\n{\"id\": 2, \"text\": \"json \\\"two\\\"\\n\"}\n"));
  DocumentReader reader({path("in")}, InputFormat::automatic);
  std::vector<std::string> got;
  for (std::string d; reader.next(d);) got.push_back(d);
  const std::vector<std::string> want = {docs[0], docs[1], docs[2], docs[3], "json one", "json \"two\"\n"};
  EXPECT_EQ(got, want);  // folder files in sorted order
  EXPECT_EQ(reader.bytes_read(), reader.bytes_total());
}

TEST_F(Prepare, MalformedJsonlLineNamesFileAndLine) {
  const std::string f = write("bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": oops}\n");
  DocumentReader reader({f}, InputFormat::automatic);
  std::string d;
  EXPECT_TRUE(reader.next(d));
  try {
    reader.next(d);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(f + ": line 2"), std::string::npos) << e.what();
  }
}

TEST_F(Prepare, ShardsHoldExactlyTheTokenizersIdsAndASplitByDocument) {
  const auto docs = documents();
  PrepareOptions o;
  o.inputs = {write("corpus.txt", as_text(docs))};
  o.tokenizer = kTokenizer;
  o.out = path("out");
  o.val_fraction = 0.25;
  o.shard_tokens = 300;  // several cuts
  const PrepareSummary s = prepare(o, nullptr);
  EXPECT_TRUE(s.finished);
  EXPECT_TRUE(prepare_done(o.out));
  const Tokenizer tok = Tokenizer::load(kTokenizer);
  std::vector<std::vector<int32_t>> want;  // every document's ids + end-of-text, in input order
  for (const std::string& d : docs) {
    want.push_back(tok.encode(d));
    want.back().push_back(tok.eot_id());
  }
  const auto train = shard_documents(o.out, "train"), val = shard_documents(o.out, "val");
  EXPECT_EQ(int64_t(train.size()), s.documents[0]);
  EXPECT_EQ(int64_t(val.size()), s.documents[1]);
  EXPECT_EQ(train.size() + val.size(), docs.size());
  EXPECT_GT(val.size(), 3u);  // about a quarter of 40
  EXPECT_GT(train.size(), 20u);
  EXPECT_GT(s.shards, 4);
  // Merged back in input order, the two splits are exactly `want` (the documents are distinct).
  size_t t = 0, v = 0;
  for (const auto& ids : want) {
    if (t < train.size() && train[t] == ids) {
      ++t;
    } else {
      ASSERT_LT(v, val.size());
      EXPECT_EQ(val[v], ids);
      ++v;
    }
  }
  EXPECT_EQ(t, train.size());
  // Same input, another folder: the same split (deterministic).
  o.out = path("again");
  prepare(o, nullptr);
  EXPECT_EQ(shard_documents(o.out, "val"), val);
  // A second call on a finished folder does nothing.
  EXPECT_TRUE(prepare(o, nullptr).already_done);
}

TEST_F(Prepare, ResumesAfterAnInterruptionToTheSameShards) {
  const auto docs = documents();
  PrepareOptions o;
  o.inputs = {write("corpus.txt.xz", xz(as_text(docs)))};
  o.tokenizer = kTokenizer;
  o.val_fraction = 0.2;
  o.shard_tokens = 250;
  o.out = path("straight");
  prepare(o, nullptr);

  o.out = path("interrupted");
  o.max_documents = 23;  // stops mid-way, dropping what follows the last cut, as a crash would
  const PrepareSummary first = prepare(o, nullptr);
  EXPECT_FALSE(first.finished);
  EXPECT_FALSE(prepare_done(o.out));
  // Debris of a crash: a half-written shard and the val shard of an unfinished cut.
  write("interrupted/train-00099.h5.tmp", "partial");
  fs::copy_file(find_shards(path("straight") + "/train-").front(),
                path("interrupted") + "/val-" + std::string(5 - std::to_string(99).size(), '0') + "99.h5");
  o.max_documents = 0;
  const PrepareSummary second = prepare(o, nullptr);
  EXPECT_TRUE(second.finished);
  EXPECT_GT(second.resumed_at_document, 0);
  EXPECT_LT(second.resumed_at_document, 23);
  for (const char* split : {"train", "val"}) {
    EXPECT_EQ(shard_documents(path("interrupted"), split), shard_documents(path("straight"), split)) << split;
  }
  EXPECT_EQ(find_shards(path("interrupted") + "/train-").size(), find_shards(path("straight") + "/train-").size());
}

TEST_F(Prepare, RefusesAFolderPreparedWithOtherSettings) {
  PrepareOptions o;
  o.inputs = {write("corpus.txt", as_text(documents()))};
  o.tokenizer = kTokenizer;
  o.out = path("out");
  prepare(o, nullptr);
  o.val_fraction = 0.5;
  try {
    prepare(o, nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("other settings"), std::string::npos) << e.what();
  }
}

TEST_F(Prepare, LongDocumentsEncodeInPiecesToTheSameIds) {
  const std::string text = read_text_file(std::string(HYMBA_SOURCE_DIR) + "/data/austen/val.txt.gz");
  const Tokenizer tok = Tokenizer::load(kTokenizer);
  const auto pieces = split_for_encoding(text, 20000);
  EXPECT_GT(pieces.size(), 10u);
  std::vector<int32_t> joined;
  std::string rejoined;
  for (std::string_view p : pieces) {
    tok.encode(p, joined);
    rejoined += p;
  }
  EXPECT_EQ(rejoined, text);
  EXPECT_EQ(joined, tok.encode(text));
  // Awkward text: space runs (ASCII and Unicode) around newlines must never be cut.
  std::string awkward;
  for (int i = 0; i < 2000; ++i) awkward += (i % 3 ? "word  \n  next\n" : i % 2 ? "x\n\u00a0\u00a0y\n" : "x\u3000\nY\n");
  std::vector<int32_t> ids;
  for (std::string_view p : split_for_encoding(awkward, 100)) tok.encode(p, ids);
  EXPECT_EQ(ids, tok.encode(awkward));
}

}  // namespace
}  // namespace hymba::test
