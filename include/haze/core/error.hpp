#pragma once
// haze::Error: the one exception type of the library. Every public entry
// point checks its preconditions and throws it with a message that names the
// operation, the offending shapes or values, and where the check lives.

#include <source_location>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace haze {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

template <class... Parts>
[[noreturn]] void fail(const std::source_location& where, const Parts&... parts) {
  std::ostringstream message;
  message << "haze: ";
  (message << ... << parts);
  message << " [" << where.file_name() << ":" << where.line() << "]";
  throw Error(message.str());
}

}  // namespace detail
}  // namespace haze

// HAZE_REQUIRE(cond, parts...): throw haze::Error built from `parts` (streamed
// in order) when `cond` is false. The message is only formatted on failure, so
// checks on hot paths cost one branch.
#define HAZE_REQUIRE(cond, ...)                                             \
  do {                                                                      \
    if (!(cond)) [[unlikely]]                                               \
      ::haze::detail::fail(std::source_location::current(), __VA_ARGS__);   \
  } while (false)
