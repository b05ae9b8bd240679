#include "core/json.h"

#include <algorithm>
#include <charconv>
#include <numeric>

#include "core/error.h"
#include "core/utf8.h"

namespace hymba {

namespace {

constexpr int kMaxDepth = 512;  // deeper input would only serve to exhaust the stack

const char* type_name(JsonValue::Type t) {
  switch (t) {
    case JsonValue::Type::null: return "null";
    case JsonValue::Type::boolean: return "a boolean";
    case JsonValue::Type::number: return "a number";
    case JsonValue::Type::string: return "a string";
    case JsonValue::Type::array: return "an array";
    case JsonValue::Type::object: return "an object";
  }
  return "?";
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

// Recursive descent over the text; `line_` counts the newlines passed so far (JSON allows raw
// newlines only between tokens, so skip_whitespace is the one place that sees them).
class JsonParser {
 public:
  JsonParser(std::string_view text, const JsonSource& source)
      : text_(text), source_(source), line_(source.first_line) {}

  JsonValue parse_document() {
    skip_whitespace();
    JsonValue v = parse_value(0);
    skip_whitespace();
    if (pos_ != text_.size()) error(pos_, "unexpected text after the JSON value");
    return v;
  }

 private:
  // An error at byte `at` of the line being parsed, or of `line`.
  [[noreturn]] void error(size_t at, const std::string& what) const { error(line_, at, what); }
  [[noreturn]] void error(int64_t line, size_t at, const std::string& what) const {
    fail(source_.name, ": line ", line, ", byte ", source_.offset + int64_t(at), ": ", what);
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_whitespace() {
    while (!at_end()) {
      const char c = text_[pos_];
      if (c == '\n') {
        ++line_;
      } else if (c != ' ' && c != '\t' && c != '\r') {
        return;
      }
      ++pos_;
    }
  }

  void expect_literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) error(pos_, "invalid literal");
    pos_ += word.size();
  }

  JsonValue parse_value(int depth) {
    if (depth > kMaxDepth) error(pos_, "nesting deeper than 512");
    JsonValue v;
    v.line_ = line_;
    v.offset_ = source_.offset + int64_t(pos_);
    if (at_end()) error(pos_, "expected a value, found the end of the text");
    switch (text_[pos_]) {
      case '{': v.data_ = parse_object(depth); break;
      case '[': v.data_ = parse_array(depth); break;
      case '"': v.data_ = parse_string(); break;
      case 't': expect_literal("true"), v.data_ = true; break;
      case 'f': expect_literal("false"), v.data_ = false; break;
      case 'n': expect_literal("null"); break;
      default:
        if (text_[pos_] == '-' || is_digit(text_[pos_])) {
          v.data_ = parse_number();
        } else {
          error(pos_, std::string("unexpected character '") + text_[pos_] + "'");
        }
    }
    return v;
  }

  JsonValue::Object parse_object(int depth) {
    ++pos_;  // '{'
    JsonValue::Object members;
    std::vector<std::pair<int64_t, size_t>> key_places;  // (line, offset), to name a duplicate
    skip_whitespace();
    if (peek() == '}') {
      ++pos_;
      return members;
    }
    for (;;) {
      if (peek() != '"') error(pos_, "expected a string key");
      key_places.emplace_back(line_, pos_);
      std::string key = parse_string();
      skip_whitespace();
      if (peek() != ':') error(pos_, "expected ':' after an object key");
      ++pos_;
      skip_whitespace();
      members.emplace_back(std::move(key), parse_value(depth + 1));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        skip_whitespace();
      } else if (peek() == '}') {
        ++pos_;
        break;
      } else {
        error(pos_, "expected ',' or '}' after an object member");
      }
    }
    check_unique_keys(members, key_places);
    return members;
  }

  // Sorting once per object keeps objects with many members (a 50k-entry vocabulary) fast.
  void check_unique_keys(const JsonValue::Object& members,
                         const std::vector<std::pair<int64_t, size_t>>& places) {
    std::vector<size_t> order(members.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return members[a].first < members[b].first; });
    for (size_t i = 1; i < order.size(); ++i) {
      if (members[order[i]].first == members[order[i - 1]].first) {
        const auto [line, offset] = places[order[i]];
        error(line, offset, "duplicate key \"" + members[order[i]].first + "\"");
      }
    }
  }

  JsonValue::Array parse_array(int depth) {
    ++pos_;  // '['
    JsonValue::Array items;
    skip_whitespace();
    if (peek() == ']') {
      ++pos_;
      return items;
    }
    for (;;) {
      items.push_back(parse_value(depth + 1));
      skip_whitespace();
      if (peek() == ',') {
        ++pos_;
        skip_whitespace();
      } else if (peek() == ']') {
        ++pos_;
        return items;
      } else {
        error(pos_, "expected ',' or ']' after an array element");
      }
    }
  }

  std::string parse_string() {
    const size_t open = pos_++;  // '"'
    std::string out;
    for (;;) {
      // Copy the run of plain ASCII in one go: most strings are nothing else.
      const size_t run = pos_;
      while (!at_end()) {
        const unsigned char c = static_cast<unsigned char>(text_[pos_]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++pos_;
      }
      out.append(text_, run, pos_ - run);
      if (at_end()) error(open, "unterminated string");
      const unsigned char c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) error(pos_, "control character in a string (it must be escaped)");
      if (c >= 0x80) {
        char32_t cp;
        const int n = decode_utf8(reinterpret_cast<const unsigned char*>(text_.data()) + pos_,
                                  text_.size() - pos_, cp);
        if (n == 0) error(pos_, "invalid UTF-8 in a string");
        out.append(text_, pos_, size_t(n));
        pos_ += size_t(n);
        continue;
      }
      parse_escape(out);
    }
  }

  void parse_escape(std::string& out) {
    const size_t at = pos_;
    ++pos_;  // '\'
    if (at_end()) error(at, "unterminated string");
    const char c = text_[pos_++];
    switch (c) {
      case '"': out += '"'; return;
      case '\\': out += '\\'; return;
      case '/': out += '/'; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'u': break;
      default: error(at, std::string("invalid escape '\\") + c + "'");
    }
    char32_t cp = parse_hex4(at);
    if (cp >= 0xDC00 && cp <= 0xDFFF) error(at, "unpaired low surrogate escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (text_.substr(pos_, 2) != "\\u") error(at, "unpaired high surrogate escape");
      pos_ += 2;
      const char32_t low = parse_hex4(at);
      if (low < 0xDC00 || low > 0xDFFF) error(at, "unpaired high surrogate escape");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(out, cp);
  }

  // Reads the 4 hex digits at pos_; `escape_at` is where the escape began, for the message.
  char32_t parse_hex4(size_t escape_at) {
    char32_t v = 0;
    for (int i = 0; i < 4; ++i, ++pos_) {
      const int d = at_end() ? -1 : hex_digit(text_[pos_]);
      if (d < 0) error(escape_at, "\\u must be followed by 4 hex digits");
      v = v * 16 + char32_t(d);
    }
    return v;
  }

  JsonValue::Number parse_number() {
    const size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (peek() == '0') {
      ++pos_;
      if (is_digit(peek())) error(start, "number with a leading zero");
    } else if (is_digit(peek())) {
      while (is_digit(peek())) ++pos_;
    } else {
      error(start, "'-' must be followed by a digit");
    }
    bool integral = true;
    if (peek() == '.') {
      integral = false;
      ++pos_;
      if (!is_digit(peek())) error(start, "a decimal point must be followed by a digit");
      while (is_digit(peek())) ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      integral = false;
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!is_digit(peek())) error(start, "an exponent must have digits");
      while (is_digit(peek())) ++pos_;
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    JsonValue::Number n{};
    if (std::from_chars(first, last, n.value).ec == std::errc::result_out_of_range) {
      error(start, "number out of the range of a double");
    }
    int64_t i;
    if (integral && std::from_chars(first, last, i).ec == std::errc()) n.integer = i;
    return n;
  }

  std::string_view text_;
  const JsonSource& source_;
  int64_t line_;
  size_t pos_ = 0;
};

JsonValue parse_json(std::string_view text, const JsonSource& source) {
  return JsonParser(text, source).parse_document();
}

std::optional<std::string> json_string_member(std::string_view text, std::string_view key,
                                              const JsonSource& source) {
  JsonValue record = parse_json(text, source);
  if (record.type() != JsonValue::Type::object) {
    fail(source.name, ": ", record.where(), ": expected a JSON object, found ",
         type_name(record.type()));
  }
  auto& members = std::get<JsonValue::Object>(record.data_);
  for (auto& [name, value] : members) {
    if (name != key) continue;
    if (value.type() != JsonValue::Type::string) {
      fail(source.name, ": ", value.where(), ": \"", name, "\" must be a string, found ",
           type_name(value.type()));
    }
    return std::move(std::get<std::string>(value.data_));
  }
  return std::nullopt;
}

// ---- typed access ------------------------------------------------------------------------------

std::string JsonValue::where() const { return detail::concat("line ", line_, ", byte ", offset_); }

void JsonValue::expect(Type want) const {
  if (type() != want) fail(where(), ": expected ", type_name(want), ", found ", type_name(type()));
}

bool JsonValue::as_bool() const {
  expect(Type::boolean);
  return std::get<bool>(data_);
}

double JsonValue::as_number() const {
  expect(Type::number);
  return std::get<Number>(data_).value;
}

int64_t JsonValue::as_int() const {
  expect(Type::number);
  const auto& n = std::get<Number>(data_);
  if (!n.integer) fail(where(), ": expected an integer that fits in 64 bits");
  return *n.integer;
}

bool JsonValue::is_integer() const {
  return type() == Type::number && std::get<Number>(data_).integer.has_value();
}

const std::string& JsonValue::as_string() const {
  expect(Type::string);
  return std::get<std::string>(data_);
}

const JsonValue::Array& JsonValue::as_array() const {
  expect(Type::array);
  return std::get<Array>(data_);
}

const JsonValue::Object& JsonValue::as_object() const {
  expect(Type::object);
  return std::get<Object>(data_);
}

const JsonValue* JsonValue::find(std::string_view key) const {
  for (const auto& [name, value] : as_object()) {
    if (name == key) return &value;
  }
  return nullptr;
}

// ---- writing -----------------------------------------------------------------------------------

void append_json_string(std::string& out, std::string_view s, JsonEscape escape) {
  static const char* kHex = "0123456789abcdef";
  auto append_u_escape = [&](char32_t unit) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(unit >> shift) & 0xF];
  };
  const auto* bytes = reinterpret_cast<const unsigned char*>(s.data());
  out += '"';
  for (size_t i = 0; i < s.size();) {
    char32_t cp;
    const int n = decode_utf8(bytes + i, s.size() - i, cp);
    if (n == 0) fail("cannot write invalid UTF-8 as a JSON string (byte ", i, ")");
    switch (cp) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (cp < 0x20) {
          append_u_escape(cp);
        } else if (escape == JsonEscape::utf8 || (cp < 0x7F)) {
          out.append(s, i, size_t(n));
        } else if (cp < 0x10000) {
          append_u_escape(cp);  // Python escapes DEL (0x7F) too in ASCII mode
        } else {
          append_u_escape(0xD800 + ((cp - 0x10000) >> 10));
          append_u_escape(0xDC00 + ((cp - 0x10000) & 0x3FF));
        }
    }
    i += size_t(n);
  }
  out += '"';
}

std::string json_string(std::string_view s, JsonEscape escape) {
  std::string out;
  append_json_string(out, s, escape);
  return out;
}

}  // namespace hymba
