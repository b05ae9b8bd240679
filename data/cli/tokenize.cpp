// hymba-tokenize: encode or decode standard input with a tokenizer, or train one.
#include <algorithm>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "core/cli.h"
#include "core/error.h"
#include "data/text_file.h"
#include "data/tokenizer.h"

namespace {

const char* kUsage =
    "usage: hymba-tokenize --tokenizer DIR [--decode]\n"
    "       hymba-tokenize --train --vocab-size N --out DIR [--threads K] FILE...\n"
    "\n"
    "  --tokenizer DIR  encode each line of standard input and print its ids, separated by\n"
    "                   spaces, one output line per input line (the newline is not encoded);\n"
    "                   DIR holds encoder.json and vocab.bpe, e.g. data/tokenizers/gpt2\n"
    "  --decode         read whitespace-separated ids instead and print their text, a line each\n"
    "  --train          learn a byte-level BPE from FILEs (plain, gzip or xz; a line holding only\n"
    "                   <|endoftext|> separates documents) and save it in DIR (--out); ids 0, 1, 2\n"
    "                   are <|pad|>, <|bos|>, <|endoftext|>, then the 256 bytes, then the merges\n"
    "  --vocab-size N   ids to learn, all included (fewer if the corpus runs out of pairs)\n"
    "  --threads K      threads for counting pieces (default: all cores)\n";

constexpr std::string_view kSeparator = "<|endoftext|>";

struct Args {
  std::string tokenizer, out;
  bool decode = false, train = false;
  int64_t vocab_size = 0;
  int threads = 0;
  std::vector<std::string> files;
};

Args parse_args(int argc, char** argv) {
  Args a;
  hymba::CommandLine cl(argc, argv, kUsage);
  for (std::string arg; cl.next(arg);) {
    if (arg == "--tokenizer") {
      a.tokenizer = cl.value();
    } else if (arg == "--decode") {
      a.decode = true;
    } else if (arg == "--train") {
      a.train = true;
    } else if (arg == "--vocab-size") {
      a.vocab_size = cl.number<int64_t>(1);
    } else if (arg == "--out") {
      a.out = cl.value();
    } else if (arg == "--threads") {
      a.threads = cl.number<int>(1);
    } else if (arg.starts_with("--")) {
      cl.unknown(arg);
    } else {
      a.files.push_back(arg);
    }
  }
  if (a.train) {
    if (!a.tokenizer.empty() || a.decode) cl.usage_error("--train does not take --tokenizer or --decode");
    if (a.vocab_size == 0 || a.out.empty() || a.files.empty()) {
      cl.usage_error("--train needs --vocab-size, --out and at least one FILE");
    }
  } else {
    if (a.tokenizer.empty()) cl.usage_error("--tokenizer DIR (or --train) is required");
    if (!a.files.empty() || !a.out.empty() || a.vocab_size || a.threads) {
      cl.usage_error("files, --out, --vocab-size and --threads go with --train");
    }
  }
  return a;
}

// The documents of a corpus file: separated by lines holding only <|endoftext|> (the newline
// before such a line belongs to neither document); empty documents are dropped.
std::vector<std::string_view> split_documents(std::string_view text) {
  std::vector<std::string_view> docs;
  auto add = [&](size_t begin, size_t end) {
    if (end > begin) docs.push_back(text.substr(begin, end - begin));
  };
  size_t doc_begin = 0;
  for (size_t line = 0; line < text.size();) {
    const size_t end = std::min(text.find('\n', line), text.size());
    std::string_view content = text.substr(line, end - line);
    if (content.ends_with('\r')) content.remove_suffix(1);
    if (content == kSeparator) {
      add(doc_begin, line > doc_begin ? line - 1 : line);
      doc_begin = end + 1;
    }
    line = end + 1;
  }
  if (doc_begin < text.size()) add(doc_begin, text.size());
  return docs;
}

void train(const Args& a) {
  std::vector<std::string> texts;
  std::vector<std::string_view> docs;
  texts.reserve(a.files.size());  // the documents point into these strings
  for (const std::string& path : a.files) {
    texts.push_back(hymba::read_text_file(path));
    const auto file_docs = split_documents(texts.back());
    docs.insert(docs.end(), file_docs.begin(), file_docs.end());
    std::cerr << "read " << path << ": " << texts.back().size() << " bytes, " << file_docs.size()
              << " documents" << std::endl;
  }
  hymba::BpeTrainOptions options;
  options.vocab_size = a.vocab_size;
  options.threads = a.threads;
  const hymba::Tokenizer tok = hymba::train_bpe(docs, options, &std::cerr);
  tok.save(a.out);
  std::cerr << "saved " << a.out << ": " << tok.vocab_size() << " ids, identity " << tok.identity()
            << std::endl;
}

void encode_lines(const hymba::Tokenizer& tok) {
  std::string line, out;
  std::vector<int32_t> ids;
  while (std::getline(std::cin, line)) {
    ids.clear();
    tok.encode(line, ids);
    out.clear();
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i > 0) out += ' ';
      out += std::to_string(ids[i]);
    }
    std::cout << out << '\n';
  }
}

void decode_lines(const hymba::Tokenizer& tok) {
  std::string line;
  std::vector<int32_t> ids;
  for (int64_t number = 1; std::getline(std::cin, line); ++number) {
    ids.clear();
    for (size_t pos = line.find_first_not_of(" \t\r"); pos != std::string::npos;
         pos = line.find_first_not_of(" \t\r", pos)) {
      const size_t end = std::min(line.find_first_of(" \t\r", pos), line.size());
      int32_t id = 0;
      const auto [stop, ec] = std::from_chars(line.data() + pos, line.data() + end, id);
      if (ec != std::errc() || stop != line.data() + end) {
        hymba::fail("standard input, line ", number, ": \"", line.substr(pos, end - pos),
                    "\" is not a token id");
      }
      ids.push_back(id);
      pos = end;
    }
    try {
      std::cout << tok.decode(ids) << '\n';
    } catch (const hymba::Error& e) {
      hymba::fail("standard input, line ", number, ": ", e.what());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  const Args a = parse_args(argc, argv);
  try {
    if (a.train) {
      train(a);
    } else {
      const hymba::Tokenizer tok = hymba::Tokenizer::load(a.tokenizer);
      a.decode ? decode_lines(tok) : encode_lines(tok);
    }
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
