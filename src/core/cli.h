// Command-line scaffolding shared by the hymba-* tools: a walk over the arguments in which an
// option's value is the next argument; -h / --help prints the usage and exits 0; a usage error
// prints "error: ..." and the usage to stderr and exits 2 (other failures exit 1).
#pragma once

#include <charconv>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <string>
#include <system_error>

namespace hymba {

class CommandLine {
 public:
  CommandLine(int argc, char** argv, const char* usage) : argc_(argc), argv_(argv), usage_(usage) {}

  // The next argument into `arg`; false after the last.
  bool next(std::string& arg) {
    if (++i_ >= argc_) return false;
    arg = argv_[i_];
    if (arg == "-h" || arg == "--help") {
      std::cout << usage_;
      std::exit(0);
    }
    return true;
  }

  // The value of the option just read: the next argument.
  std::string value() {
    const std::string option = argv_[i_];
    if (i_ + 1 >= argc_) usage_error(option + " needs a value");
    return argv_[++i_];
  }

  // value() as a number of type T (integer or floating point) no smaller than `min`.
  template <class T>
  T number(T min = std::numeric_limits<T>::lowest()) {
    const std::string option = argv_[i_];
    return parse(option, value(), min);
  }

  // `text` (part of option's value) as such a number.
  template <class T>
  T parse(const std::string& option, const std::string& text, T min) const {
    T v{};
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < min) {
      usage_error(option + " needs a number >= " + std::to_string(min) + ", not \"" + text + "\"");
    }
    return v;
  }

  [[noreturn]] void usage_error(const std::string& what) const {
    std::cerr << "error: " << what << "\n" << usage_;
    std::exit(2);
  }

  // For an argument that is not an option the tool knows.
  [[noreturn]] void unknown(const std::string& arg) const { usage_error("unknown option " + arg); }

 private:
  int argc_;
  char** argv_;
  const char* usage_;
  int i_ = 0;
};

}  // namespace hymba
