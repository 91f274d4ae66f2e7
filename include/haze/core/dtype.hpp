#pragma once
// Element types a tensor may hold, and the type sums accumulate in.

#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace haze {

// Types a Tensor can store: floating point for math, integers for labels.
template <class T>
concept Element = std::same_as<T, float> || std::same_as<T, double> ||
                  std::same_as<T, int32_t> || std::same_as<T, int64_t>;

// Types the numerical ops accept.
template <class T>
concept Real = std::same_as<T, float> || std::same_as<T, double>;

// Reductions accumulate in double whatever T is: a float sum over a whole
// activation map keeps ~1e-16 relative error in the accumulator, so backends
// that add in different orders still agree to float rounding of the result.
using Accumulator = double;

template <Element T>
constexpr std::string_view dtype_name() {
  if constexpr (std::is_same_v<T, float>) return "float32";
  else if constexpr (std::is_same_v<T, double>) return "float64";
  else if constexpr (std::is_same_v<T, int32_t>) return "int32";
  else return "int64";
}

}  // namespace haze
