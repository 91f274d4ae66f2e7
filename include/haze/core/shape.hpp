#pragma once
// Shape: the extents of a tensor, rank 1 to 4, row-major; images are NCHW.
// Every extent is positive: haze has no empty tensors, so a zero or negative
// extent is a caller's mistake and is reported at construction.

#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <span>
#include <sstream>
#include <string>

#include "haze/core/error.hpp"

namespace haze {

struct Shape {
  static constexpr int max_rank = 4;

  Shape() = default;  // rank 0: the shape of a tensor that holds nothing yet

  Shape(std::initializer_list<int64_t> extents) : Shape(std::span<const int64_t>(extents.begin(), extents.size())) {}

  explicit Shape(std::span<const int64_t> extents) {
    HAZE_REQUIRE(extents.size() >= 1 && extents.size() <= max_rank, "Shape: rank must be 1..",
                 max_rank, ", got ", extents.size(), " extents");
    for (int64_t e : extents) {
      HAZE_REQUIRE(e > 0, "Shape: every extent must be positive, got ", e, " in ",
                   describe(extents));
      dims_[rank_++] = e;
    }
  }

  int rank() const { return rank_; }
  int64_t operator[](int axis) const {
    HAZE_REQUIRE(axis >= 0 && axis < rank_, "Shape: axis ", axis, " out of range for ", *this);
    return dims_[axis];
  }
  int64_t numel() const {
    int64_t n = rank_ == 0 ? 0 : 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[i];
    return n;
  }

  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.dims_[i] != b.dims_[i]) return false;
    return true;
  }

  friend std::ostream& operator<<(std::ostream& os, const Shape& s) {
    os << '[';
    for (int i = 0; i < s.rank_; ++i) os << (i ? ", " : "") << s.dims_[i];
    return os << ']';
  }

  std::string str() const {
    std::ostringstream os;
    os << *this;
    return os.str();
  }

 private:
  static std::string describe(std::span<const int64_t> extents) {
    std::ostringstream os;
    os << '[';
    bool first = true;
    for (int64_t e : extents) os << (first ? "" : ", ") << e, first = false;
    os << ']';
    return os.str();
  }

  std::array<int64_t, max_rank> dims_{};
  int rank_ = 0;
};

}  // namespace haze
