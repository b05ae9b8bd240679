// GPT-2's two files. encoder.json maps each token, written in GPT-2's byte alphabet, to its id;
// vocab.bpe lists the merges by rank, one "LEFT RIGHT" per line after a "#version" line.
#include <array>
#include <filesystem>
#include <unordered_map>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/utf8.h"
#include "data/text_file.h"
#include "data/tokenizer_impl.h"

namespace hymba {

namespace {

// Above any real vocabulary; keeps a corrupt id from allocating gigabytes.
constexpr int64_t kMaxId = int64_t(1) << 24;

// GPT-2's byte alphabet: the bytes that print (! to ~, ¡ to ¬, ® to ÿ) stand for themselves,
// the other 68 for U+0100, U+0101, ... in byte order. A token's bytes thus read as a printable
// string without spaces, which encoder.json can key by and vocab.bpe can split at a space.
class ByteAlphabet {
 public:
  ByteAlphabet() {
    byte_of_char_.fill(-1);
    char32_t next_extra = 0x100;
    for (int b = 0; b < 256; ++b) {
      const bool prints = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t c = prints ? char32_t(b) : next_extra++;
      append_utf8(char_of_byte_[size_t(b)], c);
      byte_of_char_[c] = b;
    }
  }
  // The alphabet string of `bytes`.
  std::string encode(std::string_view bytes) const {
    std::string s;
    for (unsigned char b : bytes) s += char_of_byte_[b];
    return s;
  }
  // The byte that the one-character string `s` stands for, or −1.
  int byte_of(std::string_view s) const {
    char32_t c;
    const int n = decode_utf8(reinterpret_cast<const unsigned char*>(s.data()), s.size(), c);
    return n > 0 && size_t(n) == s.size() && c < byte_of_char_.size() ? byte_of_char_[c] : -1;
  }

 private:
  std::array<std::string, 256> char_of_byte_;
  std::array<int, 0x144> byte_of_char_;  // the alphabet ends at U+0143
};

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet alphabet;
  return alphabet;
}

// encoder.json, checked: ids are integers in range, no id twice.
struct Encoder {
  std::unordered_map<std::string, int32_t> id_of;
  std::vector<std::string> key_of;  // by id; empty where unused
};

Encoder read_encoder(const std::string& path) {
  const std::string text = read_text_file(path);
  const JsonValue json = parse_json(text, {path});
  if (json.type() != JsonValue::Type::object) fail(path, ": expected an object of token: id");
  const auto& members = json.as_object();
  Encoder e;
  e.id_of.reserve(members.size());
  for (const auto& [key, value] : members) {
    if (!value.is_integer() || value.as_int() < 0 || value.as_int() >= kMaxId) {
      fail(path, ": ", value.where(), ": the id of \"", key, "\" must be an integer in [0, ",
           kMaxId, ")");
    }
    const auto id = static_cast<int32_t>(value.as_int());
    if (key.empty()) fail(path, ": ", value.where(), ": empty token (id ", id, ")");
    if (size_t(id) >= e.key_of.size()) e.key_of.resize(size_t(id) + 1);
    if (!e.key_of[size_t(id)].empty()) {
      fail(path, ": ", value.where(), ": \"", key, "\" has id ", id, ", which \"",
           e.key_of[size_t(id)], "\" already has");
    }
    e.key_of[size_t(id)] = key;
    e.id_of.emplace(key, id);
  }
  return e;
}

// Builds the vocabulary from encoder.json and vocab.bpe: bytes and merge results are ordinary
// tokens, every other entry is a special token.
Vocabulary read_vocabulary(const std::string& encoder_path, const std::string& merges_path) {
  const ByteAlphabet& alphabet = byte_alphabet();
  const Encoder e = read_encoder(encoder_path);
  Vocabulary v;
  v.tokens.resize(e.key_of.size());
  v.kinds.assign(e.key_of.size(), TokenKind::unused);
  for (size_t id = 0; id < e.key_of.size(); ++id) {
    if (e.key_of[id].empty()) continue;
    const int b = alphabet.byte_of(e.key_of[id]);
    v.kinds[id] = b >= 0 ? TokenKind::ordinary : TokenKind::special;
    v.tokens[id] = b >= 0 ? std::string(1, char(b)) : e.key_of[id];
  }
  for (int b = 0; b < 256; ++b) {
    const std::string key = alphabet.encode(std::string(1, char(b)));
    if (!e.id_of.count(key)) fail(encoder_path, ": no token for byte ", b, " (\"", key, "\")");
  }

  const std::string text = read_text_file(merges_path);
  std::unordered_map<uint64_t, int64_t> line_of_pair;
  int64_t line = 0;
  for (size_t begin = 0; begin < text.size();) {
    size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    const std::string_view entry(text.data() + begin, end - begin);
    begin = end + 1;
    ++line;
    if (line == 1 && entry.starts_with("#version")) continue;
    const size_t space = entry.find(' ');
    if (space == 0 || space == std::string_view::npos || space + 1 == entry.size() ||
        entry.find(' ', space + 1) != std::string_view::npos) {
      fail(merges_path, ": line ", line, ": expected two tokens separated by one space, found \"",
           entry, "\"");
    }
    int32_t part[2];
    const std::string_view names[2] = {entry.substr(0, space), entry.substr(space + 1)};
    for (int i = 0; i < 2; ++i) {
      const auto it = e.id_of.find(std::string(names[i]));
      if (it == e.id_of.end()) {
        fail(merges_path, ": line ", line, ": unknown token \"", names[i], "\" (not in ",
             encoder_path, ")");
      }
      if (v.kinds[size_t(it->second)] != TokenKind::ordinary) {
        fail(merges_path, ": line ", line, ": \"", names[i],
             "\" is neither a byte nor made by an earlier merge");
      }
      part[i] = it->second;
    }
    const auto merged = e.id_of.find(std::string(names[0]) + std::string(names[1]));
    if (merged == e.id_of.end()) {
      fail(merges_path, ": line ", line, ": the merged token \"", names[0], names[1],
           "\" is not in ", encoder_path);
    }
    const auto [seen, fresh] = line_of_pair.emplace(Tokenizer::Impl::pair_key(part[0], part[1]), line);
    if (!fresh) fail(merges_path, ": line ", line, ": repeats the merge on line ", seen->second);
    const auto result = size_t(merged->second);
    v.kinds[result] = TokenKind::ordinary;
    v.tokens[result] = v.tokens[size_t(part[0])] + v.tokens[size_t(part[1])];
    v.merges.push_back({part[0], part[1], merged->second});
  }
  return v;
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& dir) {
  return Tokenizer(std::make_unique<Impl>(read_vocabulary(dir + "/encoder.json", dir + "/vocab.bpe")));
}

void Tokenizer::save(const std::string& dir) const {
  const ByteAlphabet& alphabet = byte_alphabet();
  const Vocabulary& v = impl_->vocab;
  std::vector<std::string> keys(v.tokens.size());
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    keys[id] = v.kinds[id] == TokenKind::ordinary ? alphabet.encode(v.tokens[id]) : v.tokens[id];
  }
  // Written as Python's json.dumps writes it (ASCII escapes, ", " and ": "), like GPT-2's own
  // file, so loading and saving GPT-2's vocabulary reproduces it byte for byte.
  std::string encoder = "{";
  for (size_t id = 0; id < v.tokens.size(); ++id) {
    if (v.kinds[id] == TokenKind::unused) continue;
    if (encoder.size() > 1) encoder += ", ";
    append_json_string(encoder, keys[id], JsonEscape::ascii);
    encoder += ": " + std::to_string(id);
  }
  encoder += "}";
  std::string merges = "#version: 0.2\n";
  for (const Merge& m : v.merges) {
    merges += keys[size_t(m.left)] + " " + keys[size_t(m.right)] + "\n";
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(dir, ": cannot create the directory (", ec.message(), ")");
  write_file_atomically(dir + "/encoder.json", encoder);
  write_file_atomically(dir + "/vocab.bpe", merges);
}

}  // namespace hymba
