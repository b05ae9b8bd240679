// Errors: every failure the user can cause becomes a hymba::Error whose message names the file,
// key or offset at fault. Internal invariants use HYMBA_ASSERT, which names the source line.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace hymba {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream s;
  (s << ... << args);
  return s.str();
}
}  // namespace detail

// Throws hymba::Error with the arguments streamed together: fail("model.hidden_size: ", v, " ...").
template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::concat(args...));
}

}  // namespace hymba

// Checks a condition that only a bug in this code base can break.
#define HYMBA_ASSERT(cond)                                                                   \
  do {                                                                                       \
    if (!(cond)) ::hymba::fail(__FILE__, ":", __LINE__, ": internal check failed: ", #cond); \
  } while (0)
