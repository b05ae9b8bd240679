#include "config/yaml_reader.h"

#include <charconv>
#include <cmath>
#include <optional>
#include <type_traits>

#include "core/error.h"

namespace hymba::yaml {
namespace {

// yaml-cpp tags a quoted scalar "!" and a plain one "?": only a plain scalar can be a number.
bool is_plain_scalar(const YAML::Node& n) { return n.IsScalar() && n.Tag() != "!"; }

// The whole text must be the number: "64.5" is not the integer 64 followed by junk.
template <class T>
std::optional<T> parse_number(const YAML::Node& n) {
  if (!is_plain_scalar(n)) return std::nullopt;
  const std::string& s = n.Scalar();
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<int64_t> parse_int(const YAML::Node& n) { return parse_number<int64_t>(n); }

std::optional<double> parse_real(const YAML::Node& n) {
  const std::optional<double> v = parse_number<double>(n);  // from_chars also accepts inf, nan
  if (v && !std::isfinite(*v)) return std::nullopt;
  return v;
}

std::optional<std::string> parse_string(const YAML::Node& n) {
  if (n.IsNull()) return std::string();
  if (!n.IsScalar()) return std::nullopt;
  return n.Scalar();
}

template <class Parse>
auto parse_list(const YAML::Node& n, Parse item)
    -> std::optional<std::vector<typename std::invoke_result_t<Parse, const YAML::Node&>::value_type>> {
  using T = typename std::invoke_result_t<Parse, const YAML::Node&>::value_type;
  if (n.IsNull()) return std::vector<T>();
  if (!n.IsSequence()) return std::nullopt;
  std::vector<T> out;
  for (const YAML::Node& x : n) {
    std::optional<T> v = item(x);
    if (!v) return std::nullopt;
    out.push_back(std::move(*v));
  }
  return out;
}

template <class T>
T require(std::optional<T> v, const YAML::Node& n, const char* expected) {
  if (!v) fail("expected ", expected, ", got ", show(n));
  return std::move(*v);
}

template <class T>
void write_list(YAML::Emitter& out, const std::vector<T>& v) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const T& x : v) write(out, x);
  out << YAML::EndSeq;
}

}  // namespace

void read(const YAML::Node& n, int64_t& v) { v = require(parse_int(n), n, "an integer"); }

void read(const YAML::Node& n, uint64_t& v) {
  v = require(parse_number<uint64_t>(n), n, "a non-negative integer");
}

void read(const YAML::Node& n, double& v) { v = require(parse_real(n), n, "a number"); }

void read(const YAML::Node& n, std::string& v) { v = require(parse_string(n), n, "a string"); }

void read(const YAML::Node& n, std::vector<int64_t>& v) {
  v = require(parse_list(n, parse_int), n, "a list of integers");
}

void read(const YAML::Node& n, std::vector<std::vector<int64_t>>& v) {
  const auto int_list = [](const YAML::Node& x) { return parse_list(x, parse_int); };
  v = require(parse_list(n, int_list), n, "a list of lists of integers");
}

void read(const YAML::Node& n, std::vector<std::string>& v) {
  v = require(parse_list(n, parse_string), n, "a list of strings");
}

void write(YAML::Emitter& out, int64_t v) { out << v; }

void write(YAML::Emitter& out, uint64_t v) { out << v; }

void write(YAML::Emitter& out, double v) {
  char buf[32];  // the shortest text that reads back as exactly v (0.1, not 0.10000000000000001)
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  HYMBA_ASSERT(ec == std::errc());
  out << std::string(buf, end);
}

void write(YAML::Emitter& out, const std::string& v) { out << YAML::DoubleQuoted << v; }

void write(YAML::Emitter& out, const std::vector<int64_t>& v) { write_list(out, v); }

void write(YAML::Emitter& out, const std::vector<std::vector<int64_t>>& v) { write_list(out, v); }

void write(YAML::Emitter& out, const std::vector<std::string>& v) { write_list(out, v); }

bool is_word(const YAML::Node& n, std::string_view word) {
  return is_plain_scalar(n) && n.Scalar() == word;
}

std::string show(const YAML::Node& n) {
  if (!n || n.IsNull()) return "nothing";
  if (n.IsScalar()) return is_plain_scalar(n) ? n.Scalar() : '"' + n.Scalar() + '"';
  YAML::Emitter out;
  out << YAML::Flow << n;
  return out.c_str();
}

}  // namespace hymba::yaml
