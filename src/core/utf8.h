// UTF-8 by the book (RFC 3629): one strict decoder and the encoder. The JSON reader and writer
// validate with it; the tokenizer's lenient decoder (data/unicode.h) is built on it.
#pragma once

#include <cstddef>
#include <string>

namespace hymba {

// Decodes the character starting at p (`avail` bytes readable, at least 1). Returns its length
// (1 to 4) and stores it in `cp`, or returns 0 when the bytes there are not valid UTF-8: a stray
// continuation byte, an overlong form, a surrogate, a value above U+10FFFF, or a sequence cut
// short.
inline int decode_utf8(const unsigned char* p, size_t avail, char32_t& cp) {
  const unsigned char b0 = p[0];
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  int length;
  char32_t min;  // smallest value that needs this many bytes (anything less is overlong)
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    length = 2, min = 0x80, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    length = 3, min = 0x800, cp = b0 & 0x0F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    length = 4, min = 0x10000, cp = b0 & 0x07;
  } else {
    return 0;  // a continuation byte, C0/C1 (always overlong) or F5..FF (beyond U+10FFFF)
  }
  if (avail < static_cast<size_t>(length)) return 0;
  for (int i = 1; i < length; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return length;
}

// Appends `cp` (a Unicode scalar value: at most U+10FFFF, not a surrogate) as UTF-8.
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace hymba
