// GPT-2's pre-tokenizer, scanned by hand. GPT-2 splits text with the regex
//
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// (the leftmost alternative that matches wins), and BPE merges never cross the pieces it makes.
// Character classes come from data/unicode.h; bytes that are not valid UTF-8 count as "other".
#pragma once

#include <cstddef>
#include <string_view>

namespace hymba {

// The end of the piece that starts at byte `begin` of `text` (begin < text.size()). The pieces
// of a text are [0, e1), [e1, e2), ... up to text.size().
size_t piece_end(std::string_view text, size_t begin);

// The first position at or after `from` where a piece starts whatever text comes before or after
// it, or text.size() if there is none: just after a '\n' that has a non-whitespace character on
// both sides. (The '\n' is then a whitespace run of its own, which ends the same way whether
// text follows or not; with whitespace before it, the run would keep the '\n' at the end of a
// text but give it up to the next piece before a word.) Cutting a text there and
// pre-tokenizing the parts gives exactly the pieces of the whole, so threads can share one long
// document.
size_t safe_split_point(std::string_view text, size_t from);

}  // namespace hymba
