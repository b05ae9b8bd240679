#include "data/pretokenize.h"

#include "data/unicode.h"

namespace hymba {

namespace {

// Length of a contraction ('s 't 're 've 'm 'll 'd, lower case only, as in GPT-2) at `begin`,
// or 0.
size_t contraction_length(std::string_view text, size_t begin) {
  const std::string_view rest = text.substr(begin, 3);
  if (rest.size() < 2 || rest[0] != '\'') return 0;
  const char c = rest[1];
  if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
  if (rest.size() == 3 && ((c == 'r' && rest[2] == 'e') || (c == 'v' && rest[2] == 'e') ||
                           (c == 'l' && rest[2] == 'l'))) {
    return 3;
  }
  return 0;
}

}  // namespace

size_t piece_end(std::string_view text, size_t begin) {
  const size_t n = text.size();
  if (const size_t c = contraction_length(text, begin)) return begin + c;

  // " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional space, then a run of one class.
  size_t run = begin;
  TextChar ch = char_at(text, begin);
  if (text[begin] == ' ' && begin + 1 < n) {
    const TextChar next = char_at(text, begin + 1);
    if (next.cls != CharClass::space) run = begin + 1, ch = next;
  }
  if (ch.cls != CharClass::space) {
    const CharClass cls = ch.cls;
    size_t end = run + ch.length;
    while (end < n && (ch = char_at(text, end)).cls == cls) end += ch.length;
    return end;
  }

  // "\s+(?!\S)|\s+": a whitespace run, less its last character when a non-space follows (that
  // character then starts the next piece, where a ' ' joins the word after it), unless the run
  // is that one character.
  size_t last = begin, end = begin + ch.length;
  while (end < n && (ch = char_at(text, end)).cls == CharClass::space) last = end, end += ch.length;
  return end < n && last > begin ? last : end;
}

size_t safe_split_point(std::string_view text, size_t from) {
  for (size_t nl = text.find('\n', from > 0 ? from - 1 : 0); nl != std::string_view::npos;
       nl = text.find('\n', nl + 1)) {
    if (nl + 1 < text.size() && char_at(text, nl + 1).cls != CharClass::space &&
        (nl == 0 || char_class_before(text, nl) != CharClass::space)) {
      return nl + 1;
    }
  }
  return text.size();
}

}  // namespace hymba
