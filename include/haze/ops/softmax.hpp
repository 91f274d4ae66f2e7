#pragma once
// Softmax over the last axis, in place, and its backward:
//   p = exp(s - max s) / sum exp(s - max s)
//   ds = p * (dp - sum(dp * p))      (per row)
// One functor call per row: rows are short (attention: tokens of one image).
// The max and the sums (lane_sum) run in reduction_lanes partials. A
// backend with its own (owns_softmax: CUDA's, a row per warp) runs that
// instead; these functors are its twin.

#include <cstdint>

#include "haze/core/error.hpp"
#include "haze/core/fast_exp.hpp"
#include "haze/core/macros.hpp"
#include "haze/core/tensor.hpp"
#include "haze/ops/elementwise.hpp"
#include "haze/ops/reduce.hpp"

namespace haze::ops {

namespace detail {

template <class T>
HAZE_HD T row_max(const T* r, int64_t cols) {
  T part[reduction_lanes];
  for (int l = 0; l < reduction_lanes; ++l) part[l] = r[0];
  int64_t j = 0;
  for (; j + reduction_lanes <= cols; j += reduction_lanes)
    for (int l = 0; l < reduction_lanes; ++l) part[l] = r[j + l] > part[l] ? r[j + l] : part[l];
  for (; j < cols; ++j) part[0] = r[j] > part[0] ? r[j] : part[0];
  T top = part[0];
  for (int l = 1; l < reduction_lanes; ++l) top = part[l] > top ? part[l] : top;
  return top;
}

template <class T>
struct SoftmaxRow {
  T* x;
  int64_t cols;
  HAZE_HD void operator()(int64_t row) const {
    T* r = x + row * cols;
    const T top = row_max(r, cols);
    for (int64_t j = 0; j < cols; ++j) r[j] = fast_exp(r[j] - top);  // a loop of its own vectorises
    const T inv = T(1 / lane_sum([r](int64_t j) { return Accumulator(r[j]); }, cols));
    for (int64_t j = 0; j < cols; ++j) r[j] *= inv;
  }
};

template <class T>
struct SoftmaxBackwardRow {
  const T* p;
  T* d;  // dp in, ds out
  int64_t cols;
  HAZE_HD void operator()(int64_t row) const {
    const T* pr = p + row * cols;
    T* dr = d + row * cols;
    const T dot = T(lane_sum([dr, pr](int64_t j) { return Accumulator(dr[j]) * Accumulator(pr[j]); }, cols));
    for (int64_t j = 0; j < cols; ++j) dr[j] = pr[j] * (dr[j] - dot);
  }
};

}  // namespace detail

template <Real T, Backend B>
void softmax_rows(Tensor<T, B>& x) {
  x.require_nonempty("ops::softmax_rows");
  const int64_t cols = x.dim(x.rank() - 1);
  if constexpr (owns_softmax<B>)
    B::softmax::forward(x.data(), x.numel() / cols, cols);
  else
    B::for_each_index(x.numel() / cols, detail::SoftmaxRow<T>{x.data(), cols}, cols);
}

// d holds dL/dp on entry and dL/ds on return; p is the softmax output.
template <Real T, Backend B>
void softmax_rows_backward(const Tensor<T, B>& p, Tensor<T, B>& d) {
  detail::require_same_shape("ops::softmax_rows_backward", "p", p, "d", d);
  const int64_t cols = p.dim(p.rank() - 1);
  if constexpr (owns_softmax<B>)
    B::softmax::backward(p.data(), d.data(), p.numel() / cols, cols);
  else
    B::for_each_index(p.numel() / cols, detail::SoftmaxBackwardRow<T>{p.data(), d.data(), cols}, cols);
}

}  // namespace haze::ops
