// Reads a whole text file, plain or compressed with gzip or xz (recognised from its content).
#pragma once

#include <string>

namespace hymba {

// "-" reads standard input. Errors name the file and, for damaged compressed data, how far
// decompression got.
std::string read_text_file(const std::string& path);

}  // namespace hymba
