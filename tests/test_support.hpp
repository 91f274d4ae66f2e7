#pragma once
// Helpers shared by the test executables: host data from an RNG independent
// of haze's own, sentinels for outputs, and Catch2 matchers for haze::Error.

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace haze::test {

// Uniform values in [-1, 1) from std::mt19937_64, so op tests do not lean
// on the Philox code they might be testing.
template <class T>
std::vector<T> uniform(int64_t n, uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<T>(dist(engine));
  return v;
}

// Outputs are prefilled with NaN: an element an op forgot to write fails
// every comparison.
template <class T>
constexpr T sentinel() {
  return std::numeric_limits<T>::quiet_NaN();
}

inline Catch::Matchers::StdString::ContainsMatcher mentions(const std::string& text) {
  return Catch::Matchers::Contains(text);
}

}  // namespace haze::test
