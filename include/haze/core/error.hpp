#pragma once
// haze::Error: the one exception type of the library. Every public entry
// point checks its preconditions and throws it with a message that names the
// operation, the offending shapes or values, and where the check lives.

#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace haze {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

// Where a check lives comes from __FILE__ and __LINE__ at the macro, not
// std::source_location: clang 14 with libstdc++ 12 has no source_location,
// and haze builds with both compilers.
template <class... Parts>
[[noreturn]] void fail(const char* file, int line, const Parts&... parts) {
  std::ostringstream message;
  message << "haze: ";
  (message << ... << parts);
  message << " [" << file << ":" << line << "]";
  throw Error(message.str());
}

// Runs f(); a haze::Error it throws is thrown again with "context: " in front
// of its text (a loader adds the file name to a check that knows no files).
template <class F>
decltype(auto) with_context(std::string_view context, F&& f) {
  try {
    return f();
  } catch (const Error& e) {
    std::string_view text = e.what();
    if (text.starts_with("haze: ")) text.remove_prefix(6);
    throw Error("haze: " + std::string(context) + ": " + std::string(text));
  }
}

}  // namespace detail
}  // namespace haze

// HAZE_FAIL(parts...): throw haze::Error built from `parts` (streamed in
// order), with the file and line of the call.
#define HAZE_FAIL(...) ::haze::detail::fail(__FILE__, __LINE__, __VA_ARGS__)

// HAZE_REQUIRE(cond, parts...): HAZE_FAIL(parts...) when `cond` is false. The
// message is only formatted on failure, so checks on hot paths cost one branch.
#define HAZE_REQUIRE(cond, ...)          \
  do {                                   \
    if (!(cond)) [[unlikely]]            \
      HAZE_FAIL(__VA_ARGS__);            \
  } while (false)
