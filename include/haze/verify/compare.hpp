#pragma once
// Compare a tensor against a reference, possibly on another backend:
// element i passes when |got - ref| <= atol + rtol |ref|. The report keeps
// the largest absolute and relative errors and the first few mismatches, and
// prints as one line followed by those mismatches. NaN never passes.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <span>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/core/tensor.hpp"

namespace haze::verify {

struct Mismatch {
  int64_t index;
  double got;
  double expected;
};

struct Comparison {
  int64_t count = 0;       // elements compared
  int64_t mismatches = 0;  // elements outside atol + rtol |ref|
  double max_abs = 0;      // largest |got - ref|
  double max_rel = 0;      // largest |got - ref| / |ref| over ref != 0
  double atol = 0, rtol = 0;
  std::vector<Mismatch> first;  // up to max_listed mismatches, in index order

  static constexpr size_t max_listed = 5;
  bool ok() const { return mismatches == 0; }

  friend std::ostream& operator<<(std::ostream& os, const Comparison& c) {
    os << (c.ok() ? "ok" : "MISMATCH") << ": " << c.mismatches << " of " << c.count
       << " outside atol " << c.atol << " + rtol " << c.rtol << "; max abs " << c.max_abs << ", max rel "
       << c.max_rel;
    for (const Mismatch& m : c.first)
      os << "\n  [" << m.index << "] got " << m.got << " expected " << m.expected;
    return os;
  }
};

template <class T>
Comparison compare(std::span<const T> got, std::span<const T> expected, double atol, double rtol) {
  HAZE_REQUIRE(got.size() == expected.size(), "verify::compare: ", got.size(), " values against ",
               expected.size(), " reference values");
  Comparison c;
  c.count = static_cast<int64_t>(got.size());
  c.atol = atol;
  c.rtol = rtol;
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = static_cast<double>(got[i]), e = static_cast<double>(expected[i]);
    const double err = std::abs(g - e);
    const bool pass = err <= atol + rtol * std::abs(e);  // false for NaN
    if (std::isnan(err)) c.max_abs = err;
    else c.max_abs = std::max(c.max_abs, err);
    if (e != 0) c.max_rel = std::max(c.max_rel, err / std::abs(e));
    if (!pass) {
      if (c.first.size() < Comparison::max_listed) c.first.push_back({static_cast<int64_t>(i), g, e});
      ++c.mismatches;
    }
  }
  return c;
}

// Tensors on any two backends; shapes must agree.
template <class T, class B1, class B2>
Comparison compare(const Tensor<T, B1>& got, const Tensor<T, B2>& expected, double atol, double rtol) {
  HAZE_REQUIRE(got.shape() == expected.shape(), "verify::compare: shape ", got.shape(), " against reference ",
               expected.shape());
  const std::vector<T> g = got.to_host(), e = expected.to_host();
  return compare<T>(std::span<const T>(g), std::span<const T>(e), atol, rtol);
}

}  // namespace haze::verify
