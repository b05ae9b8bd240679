// Typed reading and writing of YAML values for the config loader.
//
// Stricter than yaml-cpp's as<T>(), so that a config typo fails instead of running with a
// surprise: a quoted "64" is a string, not an integer; 64.5 is not an integer; .inf and .nan are
// not numbers. A failed read throws hymba::Error("expected an integer, got 64.5"); the caller
// prefixes the file and the key.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hymba::yaml {

// An empty value (`key:` with nothing after it) reads as "" for strings and [] for lists.
void read(const YAML::Node& n, int64_t& v);
void read(const YAML::Node& n, uint64_t& v);
void read(const YAML::Node& n, double& v);
void read(const YAML::Node& n, std::string& v);
void read(const YAML::Node& n, std::vector<int64_t>& v);
void read(const YAML::Node& n, std::vector<std::vector<int64_t>>& v);
void read(const YAML::Node& n, std::vector<std::string>& v);

// Writes what read() reads back to the same value: doubles in their shortest exact form, strings
// always quoted (so "~" or "" stay strings), lists in flow style ([0, 15, 31]).
void write(YAML::Emitter& out, int64_t v);
void write(YAML::Emitter& out, uint64_t v);
void write(YAML::Emitter& out, double v);
void write(YAML::Emitter& out, const std::string& v);
void write(YAML::Emitter& out, const std::vector<int64_t>& v);
void write(YAML::Emitter& out, const std::vector<std::vector<int64_t>>& v);
void write(YAML::Emitter& out, const std::vector<std::string>& v);

// True for an unquoted scalar spelled exactly `word` (keywords such as `auto`).
bool is_word(const YAML::Node& n, std::string_view word);

// One line for error messages: 64.5, "64" (a quoted string), [1, x], nothing (an empty value).
std::string show(const YAML::Node& n);

}  // namespace hymba::yaml
