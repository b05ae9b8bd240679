// Reads a whole text file, plain or gzip-compressed (detected from the content, not the name).
#pragma once

#include <string>

namespace hymba {

// Errors name the file and, for a damaged gzip stream, how far decompression got.
std::string read_text_file(const std::string& path);

}  // namespace hymba
