// UTF-8 decoding (strict in core/utf8.h, never failing in data/unicode.h) and the character
// classes of GPT-2's pre-tokenizer.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/rng.h"
#include "core/utf8.h"
#include "data/unicode.h"

namespace hymba {
namespace {

int decode(std::string_view s, char32_t& cp) {
  return decode_utf8(reinterpret_cast<const unsigned char*>(s.data()), s.size(), cp);
}

TEST(Utf8, DecodesEveryScalarValue) {
  for (char32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    std::string s;
    append_utf8(s, cp);
    const size_t want = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    ASSERT_EQ(s.size(), want) << std::hex << uint32_t(cp);
    char32_t got = 0;
    ASSERT_EQ(decode(s, got), int(want)) << std::hex << uint32_t(cp);
    ASSERT_EQ(got, cp);
  }
}

TEST(Utf8, RejectsInvalidSequences) {
  const char* invalid[] = {
      "\x80",              // a stray continuation byte
      "\xBF",
      "\xC0\x80",          // overlong NUL
      "\xC1\xBF",          // overlong (C0, C1 never start a valid sequence)
      "\xE0\x80\xAF",      // overlong '/'
      "\xF0\x8F\xBF\xBF",  // overlong U+FFFF
      "\xED\xA0\x80",      // the surrogate U+D800
      "\xED\xBF\xBF",      // the surrogate U+DFFF
      "\xF4\x90\x80\x80",  // U+110000
      "\xF5\x80\x80\x80",  // F5..FF never start a valid sequence
      "\xFF",
      "\xE2\x82",          // cut short
      "\xE2\x82\x41",      // a continuation byte missing
      "\xF0\x9F\x98",
  };
  for (const char* s : invalid) {
    char32_t cp;
    EXPECT_EQ(decode(s, cp), 0) << "bytes " << s;
  }
  char32_t cp;
  EXPECT_EQ(decode("\xEF\xBF\xBF", cp), 3);  // U+FFFF and U+10FFFF are valid
  EXPECT_EQ(decode("\xF4\x8F\xBF\xBF", cp), 4);
  EXPECT_EQ(cp, 0x10FFFFu);
}

std::string random_bytes(CounterRng& rng, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    // Mostly bytes that start or continue multi-byte sequences, so many are valid, many not.
    s += char(rng.below(4) ? 0x80 + rng.below(0x80) : rng.below(0x80));
  }
  return s;
}

TEST(CharAt, CoversAnyBytesExactly) {
  CounterRng rng(1, 2);
  for (int trial = 0; trial < 200; ++trial) {
    const std::string s = random_bytes(rng, 64);
    size_t valid = 0;
    for (size_t pos = 0; pos < s.size();) {
      const TextChar c = char_at(s, pos);
      char32_t cp;
      const int n = decode(std::string_view(s).substr(pos), cp);
      if (n == 0) {
        // An invalid byte is a character of its own, classed other.
        ASSERT_EQ(c.length, 1u);
        ASSERT_EQ(c.cls, CharClass::other);
      } else {
        ASSERT_EQ(c.length, uint32_t(n));
        ASSERT_EQ(c.cls, char_class(cp));
        ++valid;
      }
      pos += c.length;
      ASSERT_LE(pos, s.size());
    }
    EXPECT_GT(valid, 0u);
  }
}

TEST(CharClass, GeneralCategories) {
  const char32_t letters[] = {'a', 'Z', 0xAA /* ª Lo */, 0xE9 /* é */, 0xDF /* ß */,
                              0x1C5 /* ǅ Lt */, 0x2B0 /* ʰ Lm */, 0x3A9 /* Ω */, 0x416 /* Ж */,
                              0x5D0 /* א */, 0x4E2D /* 中 */, 0x3042 /* あ */, 0xD55C /* 한 */,
                              0x1D518 /* 𝔘 */, 0x20000 /* CJK Ext. B */};
  const char32_t numbers[] = {'0', '9', 0xB2 /* ² No */, 0xBD /* ½ No */, 0x663 /* ٣ Nd */,
                              0x216B /* Ⅻ Nl */, 0x3007 /* 〇 Nl */, 0x1D7CE /* 𝟎 Nd */};
  const char32_t others[] = {'_', '-', '\'', '$', 0x300 /* combining grave, Mn */, 0x2019 /* ’ */,
                             0x200B /* zero width space, Cf */, 0xFEFF, 0x1F600 /* 😀 */,
                             0xE000 /* private use */, 0x10FFFF /* unassigned */, 0xA9 /* © */};
  for (char32_t c : letters) EXPECT_EQ(char_class(c), CharClass::letter) << std::hex << uint32_t(c);
  for (char32_t c : numbers) EXPECT_EQ(char_class(c), CharClass::number) << std::hex << uint32_t(c);
  for (char32_t c : others) EXPECT_EQ(char_class(c), CharClass::other) << std::hex << uint32_t(c);
}

TEST(CharClass, WhitespaceIsUnicodeWhiteSpace) {
  // The White_Space property, which \s means in the `regex` module: exactly these.
  std::vector<char32_t> white = {0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
  for (char32_t c = 0x09; c <= 0x0D; ++c) white.push_back(c);
  for (char32_t c = 0x2000; c <= 0x200A; ++c) white.push_back(c);
  size_t spaces = 0;
  for (char32_t c = 0; c < 0x110000; ++c) spaces += char_class(c) == CharClass::space;
  EXPECT_EQ(spaces, white.size());
  for (char32_t c : white) EXPECT_EQ(char_class(c), CharClass::space) << std::hex << uint32_t(c);
  // Python's str.isspace() also counts U+001C..U+001F; \s in `regex` does not.
  for (char32_t c = 0x1C; c <= 0x1F; ++c) EXPECT_EQ(char_class(c), CharClass::other);
  EXPECT_EQ(char_class(0x180E), CharClass::other);  // Mongolian vowel separator: Cf since 6.3
}

TEST(CharClass, TableIsSortedAndTheAsciiFastPathAgrees) {
  using namespace unicode_detail;
  ASSERT_GT(kClassRangeCount, 500u);
  for (size_t i = 0; i < kClassRangeCount; ++i) {
    EXPECT_LE(kClassRanges[i].first, kClassRanges[i].last);
    EXPECT_NE(kClassRanges[i].cls, CharClass::other);
    if (i > 0) {
      EXPECT_LT(kClassRanges[i - 1].last, kClassRanges[i].first);
    }
  }
  EXPECT_LE(kClassRanges[kClassRangeCount - 1].last, 0x10FFFFu);
  for (char32_t c = 0; c < 128; ++c) EXPECT_EQ(kAsciiClasses[c], search_class(c)) << uint32_t(c);
}

TEST(CharClassBefore, AgreesWithDecodingFromTheStart) {
  CounterRng rng(3, 4);
  for (int trial = 0; trial < 300; ++trial) {
    std::string s = random_bytes(rng, 40);
    // Mix in whole characters of every length, spaces among them.
    for (const char* c : {"\xE3\x80\x80", "\xC2\xA0", "a", "\xF0\x9F\x98\x80", "\xE4\xB8\xAD"}) {
      s.insert(rng.below(s.size() + 1), c);
    }
    for (size_t pos = 0; pos < s.size();) {
      const TextChar c = char_at(s, pos);
      pos += c.length;
      ASSERT_EQ(char_class_before(s, pos), c.cls) << "trial " << trial << " end " << pos;
    }
  }
}

}  // namespace
}  // namespace hymba
