// The JSON reader and writer: every value type, escapes, strictness with error positions, and
// writing as Python's json.dumps does.
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "core/json.h"
#include "core/rng.h"
#include "core/utf8.h"

namespace hymba {
namespace {

JsonValue parse(std::string_view text) { return parse_json(text, {"test.json"}); }

// The message of the Error that parsing `text` throws ("" if it parses).
std::string parse_error(std::string_view text) {
  try {
    parse(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(JsonReader, ParsesEveryType) {
  const JsonValue v = parse(R"( {"a": [1, -2.5, "x", true, false, null, {}, []], "b": {"c": "d"}} )");
  ASSERT_EQ(v.type(), JsonValue::Type::object);
  const auto& a = v.find("a")->as_array();
  ASSERT_EQ(a.size(), 8u);
  EXPECT_EQ(a[0].as_int(), 1);
  EXPECT_EQ(a[1].as_number(), -2.5);
  EXPECT_EQ(a[2].as_string(), "x");
  EXPECT_TRUE(a[3].as_bool());
  EXPECT_FALSE(a[4].as_bool());
  EXPECT_EQ(a[5].type(), JsonValue::Type::null);
  EXPECT_TRUE(a[6].as_object().empty());
  EXPECT_TRUE(a[7].as_array().empty());
  EXPECT_EQ(v.find("b")->find("c")->as_string(), "d");
  EXPECT_EQ(v.find("missing"), nullptr);
  // Members keep document order.
  EXPECT_EQ(v.as_object()[0].first, "a");
  EXPECT_EQ(v.as_object()[1].first, "b");
}

TEST(JsonReader, Numbers) {
  EXPECT_EQ(parse("0").as_int(), 0);
  EXPECT_EQ(parse("-0").as_int(), 0);
  EXPECT_EQ(parse("9007199254740993").as_int(), 9007199254740993);  // 2^53 + 1: not a double
  EXPECT_EQ(parse("-9223372036854775808").as_int(), INT64_MIN);
  EXPECT_EQ(parse("1e3").as_number(), 1000.0);
  EXPECT_EQ(parse("1.5E-2").as_number(), 0.015);
  EXPECT_EQ(parse("-12.25e+1").as_number(), -122.5);
  // Integers only from integer literals that fit.
  EXPECT_FALSE(parse("1.0").is_integer());
  EXPECT_FALSE(parse("1e2").is_integer());
  EXPECT_FALSE(parse("9223372036854775808").is_integer());
  EXPECT_EQ(parse("9223372036854775808").as_number(), 9223372036854775808.0);
  EXPECT_TRUE(parse("42").is_integer());
  EXPECT_THROW(parse("1.0").as_int(), Error);
}

TEST(JsonReader, StringEscapes) {
  EXPECT_EQ(parse(R"("\"\\\/\b\f\n\r\t")").as_string(), "\"\\/\b\f\n\r\t");
  EXPECT_EQ(parse(R"("\u0041\u00e9\u4E2D")").as_string(), "A\xC3\xA9\xE4\xB8\xAD");
  EXPECT_EQ(parse(R"("\u0000")").as_string(), std::string(1, '\0'));
  // A surrogate pair is one character: U+1F600 as 4 bytes of UTF-8.
  EXPECT_EQ(parse(R"("\ud83d\ude00")").as_string(), "\xF0\x9F\x98\x80");
  // Raw UTF-8 passes through.
  EXPECT_EQ(parse("\"caf\xC3\xA9 \xF0\x9F\x98\x80\"").as_string(), "caf\xC3\xA9 \xF0\x9F\x98\x80");
}

TEST(JsonReader, RejectsMalformedInputNamingThePosition) {
  struct Case {
    const char* text;
    const char* where;  // expected in the message
    const char* what;
  };
  const Case cases[] = {
      {"", "line 1, byte 0", "expected a value"},
      {"[1, 2,]", "line 1, byte 6", "unexpected character ']'"},
      {"{\"a\": 1,}", "line 1, byte 8", "expected a string key"},
      {"{\n  'a': 1}", "line 2, byte 4", "expected a string key"},
      {"{\"a\" 1}", "line 1, byte 5", "expected ':'"},
      {"[1 2]", "line 1, byte 3", "expected ',' or ']'"},
      {"{\"a\": 1 \"b\": 2}", "line 1, byte 8", "expected ',' or '}'"},
      {"01", "line 1, byte 0", "leading zero"},
      {"+1", "line 1, byte 0", "unexpected character '+'"},
      {".5", "line 1, byte 0", "unexpected character '.'"},
      {"1.", "line 1, byte 0", "decimal point"},
      {"1e", "line 1, byte 0", "exponent"},
      {"-", "line 1, byte 0", "'-' must be followed by a digit"},
      {"NaN", "line 1, byte 0", "unexpected character 'N'"},
      {"tru", "line 1, byte 0", "invalid literal"},
      {"[\"abc", "line 1, byte 1", "unterminated string"},
      {"\"a\tb\"", "line 1, byte 2", "control character"},
      {"\"a\\x\"", "line 1, byte 2", "invalid escape"},
      {"\"\\u12G4\"", "line 1, byte 1", "4 hex digits"},
      {"\"\\ud83d\"", "line 1, byte 1", "unpaired high surrogate"},
      {"\"\\ud83d\\u0041\"", "line 1, byte 1", "unpaired high surrogate"},
      {"\"\\ude00\"", "line 1, byte 1", "unpaired low surrogate"},
      {"\"\xC3\x28\"", "line 1, byte 1", "invalid UTF-8"},
      {"\"\xED\xA0\x80\"", "line 1, byte 1", "invalid UTF-8"},  // a surrogate in UTF-8
      {"{} {}", "line 1, byte 3", "unexpected text after"},
      {"[1]\n\n x", "line 3, byte 6", "unexpected text after"},
      {"// comment\n1", "line 1, byte 0", "unexpected character '/'"},
  };
  for (const Case& c : cases) {
    const std::string msg = parse_error(c.text);
    EXPECT_NE(msg.find(std::string("test.json: ") + c.where + ": "), std::string::npos)
        << "input " << c.text << " gave: " << msg;
    EXPECT_NE(msg.find(c.what), std::string::npos) << "input " << c.text << " gave: " << msg;
  }
}

TEST(JsonReader, RejectsDuplicateKeysNamingTheSecond) {
  EXPECT_NE(parse_error(R"({"a": 1, "b": 2, "a": 3})").find("byte 17: duplicate key \"a\""),
            std::string::npos);
  EXPECT_NE(parse_error("{\"a\": 1,\n \"a\": 2,\n \"b\": 3\n}").find("line 2, byte 10: duplicate"),
            std::string::npos);
  // Equal after unescaping is equal.
  EXPECT_NE(parse_error(R"({"A": 1, "\u0041": 2})").find("duplicate key \"A\""), std::string::npos);
  // The same key in different objects is fine.
  EXPECT_EQ(parse_error(R"([{"a": 1}, {"a": 2}])"), "");
}

TEST(JsonReader, LimitsNesting) {
  EXPECT_EQ(parse_error(std::string(512, '[') + std::string(512, ']')), "");
  EXPECT_NE(parse_error(std::string(100000, '[')).find("nesting deeper than 512"), std::string::npos);
}

TEST(JsonReader, SourcePositionsShiftErrors) {
  // A JSONL reader passes the line's number and offset in its file.
  try {
    parse_json("{\"text\": 1,}", {"corpus.jsonl", 57, 1000});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("corpus.jsonl: line 57, byte 1011: "), std::string::npos)
        << e.what();
  }
  const JsonValue v = parse_json("\n[1,\n 2]", {"f", 10, 100});
  EXPECT_EQ(v.as_array()[1].where(), "line 12, byte 106");
}

TEST(JsonReader, TypedAccessNamesTheValue) {
  const JsonValue v = parse("{\"a\":\n \"x\"}");
  try {
    v.find("a")->as_int();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "line 2, byte 7: expected a number, found a string");
  }
  EXPECT_THROW(v.as_array(), Error);
  EXPECT_THROW(v.find("a")->find("b"), Error);
}

TEST(JsonStringMember, ReadsOneStringField) {
  const JsonSource src{"data.jsonl", 3, 40};
  EXPECT_EQ(json_string_member(R"({"id": 7, "meta": {"text": 1}, "text": "hi\n"})", "text", src),
            "hi\n");
  EXPECT_EQ(json_string_member(R"({"id": 7})", "text", src), std::nullopt);
  auto error = [&](std::string_view line) -> std::string {
    try {
      json_string_member(line, "text", src);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error(R"({"text": 5})").find("data.jsonl: line 3, byte 49: \"text\" must be a string"),
            std::string::npos)
      << error(R"({"text": 5})");
  EXPECT_NE(error(R"(["text"])").find("expected a JSON object, found an array"), std::string::npos);
  // The rest of the record is still checked.
  EXPECT_NE(error(R"({"text": "a", "x": [1,]})").find("data.jsonl: line 3"), std::string::npos);
}

TEST(JsonWriter, WritesLikePythonJsonDumps) {
  // Expected strings from Python: json.dumps(s) and json.dumps(s, ensure_ascii=False).
  const std::string s = "a\"b\\c/\b\f\n\r\t\x01\x1f\x7f caf\xC3\xA9 \xF0\x9F\x98\x80";
  EXPECT_EQ(json_string(s, JsonEscape::ascii),
            R"("a\"b\\c/\b\f\n\r\t\u0001\u001f\u007f caf\u00e9 \ud83d\ude00")");
  EXPECT_EQ(json_string(s, JsonEscape::utf8),
            "\"a\\\"b\\\\c/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f caf\xC3\xA9 \xF0\x9F\x98\x80\"");
  EXPECT_EQ(json_string("\xC4\xA0the"), "\"\xC4\xA0the\"");
  EXPECT_EQ(json_string("\xC4\xA0the", JsonEscape::ascii), R"("\u0120the")");
}

TEST(JsonWriter, RoundTripsThroughTheReader) {
  CounterRng rng(7, 1);
  const char32_t samples[] = {0, 0x1F, '"', '\\', 'a', 0x7F, 0xE9, 0x800, 0xFFFF, 0x10000, 0x10FFFF};
  for (int trial = 0; trial < 500; ++trial) {
    std::string s;
    const int n = int(rng.below(20));
    for (int i = 0; i < n; ++i) {
      char32_t cp = rng.below(2) ? samples[rng.below(std::size(samples))] : char32_t(rng.below(0x110000));
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
      append_utf8(s, cp);
    }
    for (JsonEscape e : {JsonEscape::utf8, JsonEscape::ascii}) {
      EXPECT_EQ(parse(json_string(s, e)).as_string(), s);
    }
  }
}

TEST(JsonWriter, RejectsInvalidUtf8) {
  try {
    json_string("ok\xFF");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("invalid UTF-8 as a JSON string (byte 2)"), std::string::npos);
  }
  EXPECT_THROW(json_string("\xED\xA0\x80", JsonEscape::ascii), Error);  // an encoded surrogate
}

}  // namespace
}  // namespace hymba
