// JSON (RFC 8259), read strictly and written the way Python's json.dumps writes it.
//
// Reading accepts exactly one value with optional whitespace around it. Anything else is an Error
// naming the source, line and byte offset: trailing commas, comments, single quotes, leading
// zeros, NaN, control characters or invalid UTF-8 inside strings, unpaired surrogate escapes,
// duplicate object keys, nesting deeper than 512. \uXXXX escapes (surrogate pairs included)
// become UTF-8.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace hymba {

// Where parsed text came from, for error messages. A JSONL reader parsing one line passes that
// line's number and byte offset in the file, so errors point into the file, not into the line.
struct JsonSource {
  std::string_view name;   // e.g. the file path
  int64_t first_line = 1;  // line number of the text's first byte
  int64_t offset = 0;      // byte offset of the text's first byte
};

class JsonValue {
 public:
  enum class Type : uint8_t { null, boolean, number, string, array, object };
  using Array = std::vector<JsonValue>;
  using Object = std::vector<std::pair<std::string, JsonValue>>;  // in document order

  Type type() const { return static_cast<Type>(data_.index()); }
  // "line L, byte B" of the value's first character, for messages about this value.
  std::string where() const;

  // Typed access. The wrong type is an Error naming the value's position.
  bool as_bool() const;
  double as_number() const;
  // Only an integer literal (no fraction, no exponent) that fits in int64.
  int64_t as_int() const;
  bool is_integer() const;  // as_int() would succeed
  const std::string& as_string() const;
  const Array& as_array() const;
  const Object& as_object() const;
  // The member named `key` of an object, or null if absent (an Error if this is not an object).
  const JsonValue* find(std::string_view key) const;

 private:
  friend class JsonParser;
  friend std::optional<std::string> json_string_member(std::string_view, std::string_view,
                                                       const JsonSource&);
  void expect(Type want) const;
  struct Number {
    double value;
    std::optional<int64_t> integer;  // set for integer literals that fit
  };
  std::variant<std::monostate, bool, Number, std::string, Array, Object> data_;
  int64_t line_ = 0, offset_ = 0;
};

JsonValue parse_json(std::string_view text, const JsonSource& source);

// The string member `key` of the object in `text`, for JSONL records such as
// {"text": ..., "meta": {...}}. The whole record is still checked, and the member's string is
// moved out, not copied (the other members cost little next to a document's text). Returns
// nullopt when the object has no such member; an Error when `text` is not one valid JSON object
// or the member is not a string.
std::optional<std::string> json_string_member(std::string_view text, std::string_view key,
                                              const JsonSource& source);

// How strings are written: utf8 keeps non-ASCII characters as they are (json.dumps with
// ensure_ascii=False); ascii writes them as \uXXXX escapes (Python's default), so the output is
// pure ASCII.
enum class JsonEscape { utf8, ascii };

// Appends `s` as a quoted JSON string. `s` must be valid UTF-8 (else an Error naming the byte
// offset): JSON cannot hold arbitrary bytes.
void append_json_string(std::string& out, std::string_view s, JsonEscape escape = JsonEscape::utf8);
std::string json_string(std::string_view s, JsonEscape escape = JsonEscape::utf8);

}  // namespace hymba
