// The byte-level BPE tokenizer: GPT-2's reference encodings, pre-tokenization, round trips of any
// bytes, the two-file format and its errors, training (merge order, determinism across thread
// counts) and the tokenizers shipped in data/tokenizers.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/json.h"
#include "core/rng.h"
#include "data/pretokenize.h"
#include "data/text_file.h"
#include "data/tokenizer.h"

namespace hymba {
namespace {

namespace fs = std::filesystem;

const std::string kRepo = HYMBA_SOURCE_DIR;
const std::string kGpt2 = kRepo + "/data/tokenizers/gpt2";

const Tokenizer& gpt2() {
  static const Tokenizer tok = Tokenizer::load(kGpt2);
  return tok;
}

const std::string& austen_train() {
  static const std::string text = read_text_file(kRepo + "/data/austen/train.txt.gz");
  return text;
}

const std::string& austen_val() {
  static const std::string text = read_text_file(kRepo + "/data/austen/val.txt.gz");
  return text;
}

// A fresh, empty folder of this test process.
std::string temp_dir(const std::string& name) {
  const fs::path dir =
      fs::temp_directory_path() / ("hymba-test-tokenizer-" + std::to_string(getpid()) + "-" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

Tokenizer train(std::vector<std::string_view> docs, int64_t vocab_size, int threads = 2,
                std::ostream* progress = nullptr) {
  BpeTrainOptions o;
  o.vocab_size = vocab_size;
  o.threads = threads;
  return train_bpe(docs, o, progress);
}

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  for (size_t begin = 0, end; begin < text.size(); begin = end) {
    end = piece_end(text, begin);
    EXPECT_GT(end, begin);
    out.emplace_back(text.substr(begin, end - begin));
  }
  return out;
}

// Random bytes that stress the tokenizer: invalid UTF-8, NULs, long whitespace runs, several
// scripts, digits, contractions.
std::string random_text(CounterRng& rng) {
  static const std::string_view fragments[] = {
      "the",       " of",  "'s",  "'ll", "'S",  "Hello", "\xC3\xA9t\xC3\xA9", "\xD0\xB6\xD0\xB8",
      "\xE4\xB8\xAD\xE6\x96\x87", "\xF0\x9F\x98\x80", "\xE2\x80\x8D", "\xE3\x80\x80", "\xC2\xA0",
      "123",       "4.5",  "!!",  "?'",  "\t",  "\r\n",  "\n\n",  " ",  "   ",  "\x80",  "\xFF",
      "\xC3",      "\xED\xA0\x80", "\xF0\x9F", "\xC0\xAF", std::string_view("\0", 1),
  };
  std::string s;
  const int n = int(rng.below(40));
  for (int i = 0; i < n; ++i) {
    switch (rng.below(4)) {
      case 0:
        s += char(rng.below(256));
        break;
      case 1:
        s += std::string(rng.below(300), " \t\n"[rng.below(3)]);
        break;
      default:
        s += fragments[rng.below(std::size(fragments))];
    }
  }
  return s;
}

// ---- GPT-2 -------------------------------------------------------------------------------------

TEST(Gpt2Tokenizer, MatchesTheReferenceEncodings) {
  // Each line: {"text": ..., "ids": [...]}, the ids from two independent GPT-2 implementations.
  std::ifstream f(kRepo + "/tests/data/gpt2_vectors.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(f, line)) {
    ++lines;
    const JsonValue v = parse_json(line, {"gpt2_vectors.jsonl", lines});
    const std::string& text = v.find("text")->as_string();
    std::vector<int32_t> want;
    for (const JsonValue& id : v.find("ids")->as_array()) want.push_back(int32_t(id.as_int()));
    const std::vector<int32_t> got = gpt2().encode(text);
    EXPECT_EQ(got, want) << "line " << lines << ": " << text;
    EXPECT_EQ(gpt2().decode(got), text) << "line " << lines;
  }
  EXPECT_EQ(lines, 381);
}

TEST(Gpt2Tokenizer, SpecialTokenIsNeverProducedFromText) {
  EXPECT_EQ(gpt2().vocab_size(), 50257);
  EXPECT_EQ(gpt2().eot_id(), 50256);
  EXPECT_EQ(gpt2().pad_id(), -1);
  const std::string text = "a<|endoftext|>b <|endoftext|>";
  const std::vector<int32_t> ids = gpt2().encode(text);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 50256), 0);
  EXPECT_EQ(gpt2().decode(ids), text);
  const int32_t eot[] = {15496, 50256, 995};
  EXPECT_EQ(gpt2().decode(eot), "Hello<|endoftext|> world");
}

TEST(Gpt2Tokenizer, SavingReproducesTheFilesByteForByte) {
  const std::string dir = temp_dir("gpt2-save");
  gpt2().save(dir);
  EXPECT_TRUE(file_bytes(dir + "/encoder.json") == file_bytes(kGpt2 + "/encoder.json"));
  EXPECT_TRUE(file_bytes(dir + "/vocab.bpe") == file_bytes(kGpt2 + "/vocab.bpe"));
  EXPECT_FALSE(fs::exists(dir + "/encoder.json.tmp"));
  fs::remove_all(dir);
}

// ---- pre-tokenization --------------------------------------------------------------------------

TEST(PreTokenizer, SplitsLikeGpt2sRegex) {
  using P = std::vector<std::string>;
  EXPECT_EQ(pieces("Hello world"), (P{"Hello", " world"}));
  EXPECT_EQ(pieces("  a"), (P{" ", " a"}));  // the last space joins the word
  EXPECT_EQ(pieces("   x"), (P{"  ", " x"}));
  EXPECT_EQ(pieces("x   "), (P{"x", "   "}));  // at the end the whole run
  EXPECT_EQ(pieces("a  \n\nb"), (P{"a", "  \n", "\n", "b"}));  // a lone '\n' never joins
  EXPECT_EQ(pieces("\t\tx"), (P{"\t", "\t", "x"}));
  EXPECT_EQ(pieces("a\r\n"), (P{"a", "\r\n"}));
  EXPECT_EQ(pieces("'s'S'll'x"), (P{"'s", "'", "S", "'ll", "'", "x"}));  // lower case only
  EXPECT_EQ(pieces("x'sup"), (P{"x", "'s", "up"}));
  EXPECT_EQ(pieces("?'s"), (P{"?'", "s"}));  // inside a symbol run ' is a symbol
  EXPECT_EQ(pieces("a1b2 3.5"), (P{"a", "1", "b", "2", " 3", ".", "5"}));
  EXPECT_EQ(pieces("hi!! ok"), (P{"hi", "!!", " ok"}));
  EXPECT_EQ(pieces("\xC3\xA9\xE4\xB8\xAD" "1\xD9\xA3"), (P{"\xC3\xA9\xE4\xB8\xAD", "1\xD9\xA3"}));
  EXPECT_EQ(pieces(" \xE3\x80\x80x"), (P{" ", "\xE3\x80\x80", "x"}));  // U+3000 is whitespace
  EXPECT_EQ(pieces("\xC2\xA0x"), (P{"\xC2\xA0", "x"}));  // only ' ' joins the next piece
  EXPECT_EQ(pieces(" \xFF\xFE!"), (P{" \xFF\xFE!"}));      // invalid bytes are symbols
  EXPECT_EQ(pieces("a\x1C" "b"), (P{"a", "\x1C", "b"}));  // U+001C is not \s
}

// The pieces of text[0, cut) followed by those of text[cut, end).
std::vector<std::string> pieces_cut_at(std::string_view text, size_t cut) {
  std::vector<std::string> out = pieces(text.substr(0, cut));
  const std::vector<std::string> rest = pieces(text.substr(cut));
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

TEST(PreTokenizer, SafeSplitPointsKeepThePieces) {
  // Whitespace of every kind around newlines: only a '\n' between two non-space characters is
  // a safe cut.
  const std::string text =
      "one\ntwo  \nthree\n\xC2\xA0\xC2\xA0x\n\n\nfour\xE4\xB8\xAD\nfive\xE3\x80\x80\nsix\n\xFF\nseven\n";
  std::vector<size_t> cuts;
  for (size_t from = 0; from <= text.size(); ++from) {
    const size_t cut = safe_split_point(text, from);
    ASSERT_GE(cut, from);
    if (cut < text.size() && (cuts.empty() || cuts.back() != cut)) cuts.push_back(cut);
    ASSERT_EQ(pieces_cut_at(text, cut), pieces(text)) << "cut at " << cut;
  }
  // After "one\n", "four中\n" (non-ASCII before), "six\n" (an invalid byte after) and "\xFF\n".
  EXPECT_EQ(cuts, (std::vector<size_t>{4, 32, 44, 46}));
  EXPECT_EQ(text.substr(32, 4), "five");
  // The rules are needed: whitespace before the '\n' or after it changes the pieces.
  EXPECT_NE(pieces_cut_at("two  \nthree", 6), pieces("two  \nthree"));
  EXPECT_NE(pieces_cut_at("three\n\xC2\xA0\xC2\xA0x", 6), pieces("three\n\xC2\xA0\xC2\xA0x"));
}

// ---- encoding and decoding ---------------------------------------------------------------------

TEST(Tokenizer, RoundTripsAnyBytes) {
  const Tokenizer austen = Tokenizer::load(kRepo + "/data/tokenizers/austen-1k");
  CounterRng rng(11, 0);
  for (int trial = 0; trial < 400; ++trial) {
    const std::string text = random_text(rng);
    for (const Tokenizer* tok : {&gpt2(), &austen}) {
      const std::vector<int32_t> ids = tok->encode(text);
      ASSERT_EQ(tok->decode(ids), text) << "trial " << trial;
      ASSERT_EQ(tok->encode(text), ids) << "trial " << trial;  // from the piece cache this time
      for (int32_t id : ids) ASSERT_NE(id, tok->eot_id());
    }
  }
}

TEST(Tokenizer, EncodesLongPiecesInLinearishTime) {
  // One piece each, 1 MB long: quadratic merging would not finish.
  std::string symbols;
  CounterRng rng(5, 5);
  for (int i = 0; i < (1 << 20); ++i) symbols += "!#$%&()*+,-./:;<=>?@[]^_`{|}~"[rng.below(29)];
  for (const std::string& text : {std::string(1 << 20, 'x'), std::string(1 << 20, ' '), symbols}) {
    EXPECT_EQ(gpt2().decode(gpt2().encode(text)), text);
  }
  EXPECT_LT(gpt2().encode(std::string(1 << 20, 'x')).size(), size_t(1 << 18));  // merged a lot
}

TEST(Tokenizer, MergesLowestRankFirstLeftmostFirst) {
  // Trained on "aaa": merge 0 is a+a (id 259), merge 1 is aa+a (id 260).
  const Tokenizer tok = train({"aaa"}, 1000);
  EXPECT_EQ(tok.encode("aaaa"), (std::vector<int32_t>{259, 259}));
  EXPECT_EQ(tok.encode("aaaaa"), (std::vector<int32_t>{259, 260}));
  EXPECT_EQ(tok.encode("aaa"), (std::vector<int32_t>{260}));
}

TEST(Tokenizer, EncodingIsThreadSafe) {
  const Tokenizer austen = Tokenizer::load(kRepo + "/data/tokenizers/austen-1k");
  const std::string_view val = austen_val();
  std::vector<std::string_view> parts;
  for (size_t begin = 0; begin < val.size();) {
    const size_t end = safe_split_point(val, begin + 20000);
    parts.push_back(val.substr(begin, end - begin));
    begin = end;
  }
  const Tokenizer* toks[] = {&gpt2(), &austen};
  std::vector<std::vector<int32_t>> want[2], got[2];
  for (int t = 0; t < 2; ++t) {
    for (auto part : parts) want[t].push_back(toks[t]->encode(part));
    got[t].resize(parts.size());
  }
  // Four threads, each switching tokenizer part by part (which also clears its piece cache).
  std::vector<std::thread> pool;
  for (size_t w = 0; w < 4; ++w) {
    pool.emplace_back([&, w] {
      for (size_t p = w; p < parts.size(); p += 4) {
        for (int t = 0; t < 2; ++t) got[t][p] = toks[t]->encode(parts[p]);
      }
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_EQ(got[0], want[0]);
  EXPECT_EQ(got[1], want[1]);
  // Parts cut at safe points encode to exactly the whole.
  std::vector<int32_t> joined;
  for (const auto& ids : want[0]) joined.insert(joined.end(), ids.begin(), ids.end());
  EXPECT_EQ(joined, gpt2().encode(val));
}

TEST(Tokenizer, DecodeRejectsIdsOutsideTheVocabulary) {
  for (int32_t bad : {-1, 50257, 1 << 30}) {
    const int32_t ids[] = {15496, bad};
    try {
      gpt2().decode(ids);
      FAIL() << "no error for " << bad;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("id " + std::to_string(bad) + " at position 1"),
                std::string::npos)
          << e.what();
    }
  }
}

// ---- the two files -----------------------------------------------------------------------------

// Trained on "ab ab cd cd", saved: merges " c", " cd", "ab", " ab" (ids 259..262).
std::string small_tokenizer_dir(const std::string& name) {
  const std::string dir = temp_dir(name);
  train({"ab ab cd cd"}, 263).save(dir);
  return dir;
}

// The message of the Error that loading `dir` throws ("" if it loads).
std::string load_error(const std::string& dir) {
  try {
    Tokenizer::load(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string replaced(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

TEST(TokenizerFiles, ErrorsNameTheFileAndTheEntry) {
  const std::string dir = small_tokenizer_dir("errors");
  const std::string enc = dir + "/encoder.json", bpe = dir + "/vocab.bpe";
  const std::string good_enc = file_bytes(enc), good_bpe = file_bytes(bpe);
  ASSERT_EQ(good_bpe, "#version: 0.2\n\xC4\xA0 c\n\xC4\xA0\x63 d\na b\n\xC4\xA0 ab\n");
  ASSERT_EQ(load_error(dir), "");

  struct Case {
    std::string encoder, merges;
    std::string message;  // expected in the error
  };
  const Case cases[] = {
      {good_enc.substr(0, good_enc.size() - 1), good_bpe, enc + ": line 1, byte "},
      {"[1, 2]", good_bpe, enc + ": expected an object"},
      {replaced(good_enc, "\"ab\": 261", "\"ab\": \"x\""), good_bpe,
       "the id of \"ab\" must be an integer"},
      {replaced(good_enc, "\"ab\": 261", "\"ab\": -1"), good_bpe, "the id of \"ab\" must be"},
      {replaced(good_enc, "\"ab\": 261", "\"ab\": 260"), good_bpe,
       "\"ab\" has id 260, which \"\xC4\xA0\x63\x64\" already has"},
      {replaced(good_enc, ", \"a\": 100", ""), good_bpe, enc + ": no token for byte 97 (\"a\")"},
      {good_enc, good_bpe + "ab zz\n", bpe + ": line 6: unknown token \"zz\" (not in " + enc},
      {good_enc, good_bpe + "b b\n", bpe + ": line 6: the merged token \"bb\" is not in " + enc},
      {good_enc, good_bpe + "ab\n", bpe + ": line 6: expected two tokens separated by one space"},
      {good_enc, good_bpe + "a  b\n", bpe + ": line 6: expected two tokens"},
      {good_enc, good_bpe + "a b\n", bpe + ": line 6: repeats the merge on line 4"},
      {good_enc, replaced(good_bpe, "\xC4\xA0 c\n", ""),
       bpe + ": line 2: \"\xC4\xA0\x63\" is neither a byte nor made by an earlier merge"},
  };
  for (const Case& c : cases) {
    write_bytes(enc, c.encoder);
    write_bytes(bpe, c.merges);
    const std::string msg = load_error(dir);
    EXPECT_NE(msg.find(c.message), std::string::npos) << "expected: " << c.message << "\ngot: " << msg;
  }
  fs::remove(bpe);
  EXPECT_NE(load_error(dir).find(bpe + ": cannot open"), std::string::npos) << load_error(dir);
  fs::remove_all(dir);
  EXPECT_NE(load_error(dir).find(enc + ": cannot open"), std::string::npos) << load_error(dir);
}

TEST(TokenizerFiles, IdentityTellsVocabulariesApart) {
  const std::string dir = small_tokenizer_dir("identity");
  const Tokenizer a = Tokenizer::load(dir);
  EXPECT_EQ(a.identity().size(), 16u);
  EXPECT_EQ(a.identity().find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(Tokenizer::load(dir).identity(), a.identity());
  // The same tokens with two independent merges swapped: another tokenizer.
  write_bytes(dir + "/vocab.bpe", "#version: 0.2\n\xC4\xA0 c\na b\n\xC4\xA0\x63 d\n\xC4\xA0 ab\n");
  const Tokenizer b = Tokenizer::load(dir);
  EXPECT_NE(b.identity(), a.identity());
  EXPECT_EQ(b.encode(" ab cd"), a.encode(" ab cd"));
  const std::string ids[] = {a.identity(), b.identity(), gpt2().identity(),
                             Tokenizer::load(kRepo + "/data/tokenizers/austen-1k").identity(),
                             Tokenizer::load(kRepo + "/data/tokenizers/austen-32k").identity()};
  for (size_t i = 0; i < std::size(ids); ++i) {
    for (size_t j = i + 1; j < std::size(ids); ++j) EXPECT_NE(ids[i], ids[j]) << i << " " << j;
  }
  fs::remove_all(dir);
}

// ---- training ----------------------------------------------------------------------------------

TEST(BpeTrainer, LaysOutSpecialsThenBytesThenMerges) {
  const Tokenizer tok = train({austen_val()}, 600);
  EXPECT_EQ(tok.vocab_size(), 600);
  EXPECT_EQ(tok.pad_id(), 0);
  EXPECT_EQ(tok.eot_id(), 2);
  const int32_t specials[] = {0, 1, 2};
  EXPECT_EQ(tok.decode(specials), "<|pad|><|bos|><|endoftext|>");
  for (int b = 0; b < 256; ++b) {
    const int32_t id[] = {3 + b};
    EXPECT_EQ(tok.decode(id), std::string(1, char(b)));
  }
  for (int32_t id : tok.encode(austen_val())) EXPECT_GE(id, 3);
}

TEST(BpeTrainer, MergesTheMostFrequentPairAndBreaksTiesByBytes) {
  // Pieces "ab", " ab", " cd", " cd": (' ', c), (c, d), (a, b) occur twice, (' ', a) once. Ties
  // go to the smaller (left, right) byte strings: ' ' < 'a' < 'c', and then " c" < "a".
  const Tokenizer tok = train({"ab ab cd cd"}, 1000);
  EXPECT_EQ(tok.vocab_size(), 263);
  std::vector<std::string> merged;
  for (int32_t id = 259; id < 263; ++id) merged.push_back(tok.decode(std::vector<int32_t>{id}));
  EXPECT_EQ(merged, (std::vector<std::string>{" c", " cd", "ab", " ab"}));
}

TEST(BpeTrainer, StopsEarlyWhenNoPairIsLeft) {
  std::ostringstream progress;
  const Tokenizer tok = train({"aaa", "a"}, 1000, 2, &progress);
  EXPECT_EQ(tok.vocab_size(), 261);  // a+a, then aa+a
  EXPECT_NE(progress.str().find("stopped early"), std::string::npos) << progress.str();
  EXPECT_NE(progress.str().find("261 of the 1000 ids"), std::string::npos) << progress.str();
}

TEST(BpeTrainer, ResultDoesNotDependOnTheThreadCount) {
  // The whole training text (3.5 MB, one document) is cut into parts for the threads.
  std::string files[3][2];
  for (int threads = 1; threads <= 3; ++threads) {
    const std::string dir = temp_dir("threads-" + std::to_string(threads));
    train({austen_train(), austen_val()}, 3000, threads).save(dir);
    files[threads - 1][0] = file_bytes(dir + "/encoder.json");
    files[threads - 1][1] = file_bytes(dir + "/vocab.bpe");
    fs::remove_all(dir);
  }
  EXPECT_GT(files[0][1].size(), 10000u);
  EXPECT_TRUE(files[0][0] == files[1][0] && files[0][0] == files[2][0]);
  EXPECT_TRUE(files[0][1] == files[1][1] && files[0][1] == files[2][1]);
}

TEST(BpeTrainer, SavedTokenizerLoadsBackIdentical) {
  const Tokenizer trained = train({austen_train()}, 2000);
  const std::string dir = temp_dir("save-load");
  trained.save(dir);
  const Tokenizer loaded = Tokenizer::load(dir);
  EXPECT_EQ(loaded.identity(), trained.identity());
  EXPECT_EQ(loaded.vocab_size(), trained.vocab_size());
  EXPECT_EQ(loaded.eot_id(), trained.eot_id());
  EXPECT_EQ(loaded.pad_id(), trained.pad_id());
  EXPECT_EQ(loaded.encode(austen_val()), trained.encode(austen_val()));
  const std::string again = temp_dir("save-load-again");
  loaded.save(again);
  EXPECT_TRUE(file_bytes(again + "/vocab.bpe") == file_bytes(dir + "/vocab.bpe"));
  EXPECT_TRUE(file_bytes(again + "/encoder.json") == file_bytes(dir + "/encoder.json"));
  fs::remove_all(dir);
  fs::remove_all(again);
}

TEST(BpeTrainer, RejectsBadOptions) {
  auto error = [](int64_t vocab_size, std::vector<std::string> specials) -> std::string {
    BpeTrainOptions o;
    o.vocab_size = vocab_size;
    o.specials = std::move(specials);
    const std::string_view doc = "some text";
    try {
      train_bpe({&doc, 1}, o, nullptr);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error(258, {"<|a|>", "<|b|>", "<|c|>"}).find("vocab_size 258 is too small"),
            std::string::npos);
  EXPECT_EQ(error(259, {"<|a|>", "<|b|>", "<|c|>"}), "");
  // One pre-tokenizer piece could be learned as a token of the same name.
  EXPECT_NE(error(300, {"<>"}).find("special token \"<>\""), std::string::npos);
  EXPECT_NE(error(300, {"pad"}).find("special token \"pad\""), std::string::npos);
  EXPECT_NE(error(300, {"'l"}).find("special token \"'l\""), std::string::npos);  // 'll holds it
  EXPECT_NE(error(300, {"<| |>"}).find("printable ASCII without spaces"), std::string::npos);
  EXPECT_NE(error(300, {"<|a|>", "<|a|>"}).find("listed twice"), std::string::npos);
}

// ---- the shipped tokenizers --------------------------------------------------------------------

TEST(ShippedTokenizers, AreThisTrainersOutputOnTheAustenCorpus) {
  // data/tokenizers/README.md: hymba-tokenize --train --vocab-size N on train.txt.gz (one
  // document). The corpus has fewer distinct pieces than 32001 ids need, so austen-32k stops
  // early at 27653.
  for (const auto& [name, vocab_size, real_size] :
       {std::tuple{"austen-1k", 1024, 1024}, std::tuple{"austen-32k", 32001, 27653}}) {
    const std::string shipped = kRepo + "/data/tokenizers/" + name;
    const std::string dir = temp_dir(name);
    const Tokenizer tok = train({austen_train()}, vocab_size);
    EXPECT_EQ(tok.vocab_size(), real_size);
    tok.save(dir);
    EXPECT_TRUE(file_bytes(dir + "/encoder.json") == file_bytes(shipped + "/encoder.json")) << name;
    EXPECT_TRUE(file_bytes(dir + "/vocab.bpe") == file_bytes(shipped + "/vocab.bpe")) << name;
    const Tokenizer loaded = Tokenizer::load(shipped);
    EXPECT_EQ(loaded.identity(), tok.identity());
    EXPECT_EQ(loaded.eot_id(), 2);
    EXPECT_EQ(loaded.pad_id(), 0);
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace hymba
