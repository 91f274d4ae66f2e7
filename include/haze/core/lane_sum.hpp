#pragma once
// A sum of `count` terms in reduction_lanes independent partials, the form
// every reduction that runs inside one functor call takes (a softmax row, a
// GroupNorm plane, a segment of the Device's reductions on the host), and
// the order the Cpu backend's sums use.

#include <cstdint>

#include "haze/core/dtype.hpp"
#include "haze/core/macros.hpp"

namespace haze::detail {

// Independent partials for a reduction a kernel runs inside one functor
// call (a softmax row, a GroupNorm plane): one chain would wait on each add
// or compare; eight overlap and vectorise.
inline constexpr int reduction_lanes = 8;

// sum over j < count of term(j), in Accumulator precision, as
// reduction_lanes partial sums combined pairwise.
template <class Term>
HAZE_HD Accumulator lane_sum(Term term, int64_t count) {
  constexpr int lanes = reduction_lanes;
  static_assert(lanes == 8, "the pairwise combination below is written for 8 partials");
  Accumulator part[lanes] = {};
  int64_t j = 0;
  for (; j + lanes <= count; j += lanes)
    for (int l = 0; l < lanes; ++l) part[l] += term(j + l);
  for (; j < count; ++j) part[0] += term(j);
  return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

}  // namespace haze::detail
