#pragma once
// Reductions, accumulated in double on every backend. The general form,
// sum_axes, views a tensor as [outer, mid, inner] and sums everything but
// `mid`; the named forms are the views layers need (bias gradients, per-
// channel and per-group statistics). An optional HAZE_HD transform
// f(value, mid_index) -> double is applied to each element first, e.g.
// (x - mean[m])^2 for a variance.

#include <cstdint>

#include "haze/core/error.hpp"
#include "haze/core/lane_sum.hpp"
#include "haze/core/macros.hpp"
#include "haze/core/tensor.hpp"

namespace haze::ops {

struct Identity {
  template <class T>
  HAZE_HD Accumulator operator()(T v, int64_t) const { return static_cast<Accumulator>(v); }
};

struct Abs {
  template <class T>
  HAZE_HD Accumulator operator()(T v, int64_t) const { return v < T(0) ? -Accumulator(v) : Accumulator(v); }
};

struct Square {
  template <class T>
  HAZE_HD Accumulator operator()(T v, int64_t) const {
    const Accumulator d = v;
    return d * d;
  }
};

// 1 for NaN and +-Inf, else 0: x - x is 0 exactly when x is finite.
struct NonFinite {
  template <class T>
  HAZE_HD Accumulator operator()(T v, int64_t) const { return (v - v) == (v - v) ? 0.0 : 1.0; }
};

namespace detail {

using haze::detail::lane_sum;
using haze::detail::reduction_lanes;

}  // namespace detail

// Sum of every element, in double.
template <Real T, Backend B>
Accumulator sum(const Tensor<T, B>& x) {
  x.require_nonempty("ops::sum");
  return B::sum(x.data(), x.numel());
}

// out[m] = sum_{o, i} f(x[o, m, i], m) + beta out[m], x viewed as [outer, mid, inner].
template <Real T, Backend B, class F = Identity>
void sum_axes(const Tensor<T, B>& x, int64_t outer, int64_t mid, int64_t inner, Tensor<T, B>& out, F f = {},
              T beta = T(0)) {
  x.require_nonempty("ops::sum_axes (input)");
  out.require_nonempty("ops::sum_axes (output)");
  HAZE_REQUIRE(outer > 0 && mid > 0 && inner > 0 && outer * mid * inner == x.numel(), "ops::sum_axes: view [",
               outer, ", ", mid, ", ", inner, "] does not cover input ", x.shape(), " (", x.numel(), " elements)");
  HAZE_REQUIRE(out.numel() == mid, "ops::sum_axes: output ", out.shape(), " must hold ", mid, " elements");
  HAZE_REQUIRE(!out.shares_storage_with(x), "ops::sum_axes: output aliases the input");
  B::sum_axes(x.data(), outer, mid, inner, f, beta, out.data());
}

namespace detail {

// The checks shared by the named views: input rank and the output's shape.
template <class T, class B>
void require_view(const char* op, const Tensor<T, B>& x, int rank, const char* layout, const Tensor<T, B>& out,
                  int64_t out_extent) {
  x.require_nonempty(op);
  HAZE_REQUIRE(x.rank() == rank, op, ": expects ", layout, " input, got ", x.shape());
  HAZE_REQUIRE(out.shape() == Shape{out_extent}, op, ": output must be [", out_extent, "] for input ", x.shape(),
               ", got ", out.shape());
}

}  // namespace detail

// x [R, C] -> out [R]
template <Real T, Backend B, class F = Identity>
void sum_rows(const Tensor<T, B>& x, Tensor<T, B>& out, F f = {}, T beta = T(0)) {
  detail::require_view("ops::sum_rows", x, 2, "a rank-2 [rows, cols]", out, x.rank() == 2 ? x.dim(0) : 0);
  sum_axes(x, 1, x.dim(0), x.dim(1), out, f, beta);
}

// x [R, C] -> out [C]: the bias gradient of a linear layer.
template <Real T, Backend B, class F = Identity>
void sum_columns(const Tensor<T, B>& x, Tensor<T, B>& out, F f = {}, T beta = T(0)) {
  detail::require_view("ops::sum_columns", x, 2, "a rank-2 [rows, cols]", out, x.rank() == 2 ? x.dim(1) : 0);
  sum_axes(x, x.dim(0), x.dim(1), 1, out, f, beta);
}

// x [N, C, H, W] -> out [C]: the bias gradient of a convolution.
template <Real T, Backend B, class F = Identity>
void sum_per_channel(const Tensor<T, B>& x, Tensor<T, B>& out, F f = {}, T beta = T(0)) {
  detail::require_view("ops::sum_per_channel", x, 4, "an NCHW", out, x.rank() == 4 ? x.dim(1) : 0);
  sum_axes(x, x.dim(0), x.dim(1), x.dim(2) * x.dim(3), out, f, beta);
}

// x [N, C, H, W] with C split into `groups` -> out [N, groups]: GroupNorm's
// per-(sample, group) sums. f's index is the flat (n * groups + g).
template <Real T, Backend B, class F = Identity>
void sum_per_group(const Tensor<T, B>& x, int64_t groups, Tensor<T, B>& out, F f = {}, T beta = T(0)) {
  x.require_nonempty("ops::sum_per_group");
  HAZE_REQUIRE(x.rank() == 4, "ops::sum_per_group: expects an NCHW input, got ", x.shape());
  HAZE_REQUIRE(groups > 0 && x.dim(1) % groups == 0, "ops::sum_per_group: ", x.dim(1),
               " channels cannot be split into ", groups, " groups");
  HAZE_REQUIRE(out.shape() == (Shape{x.dim(0), groups}), "ops::sum_per_group: output must be [", x.dim(0), ", ",
               groups, "] for input ", x.shape(), ", got ", out.shape());
  sum_axes(x, 1, x.dim(0) * groups, x.numel() / (x.dim(0) * groups), out, f, beta);
}

}  // namespace haze::ops

namespace haze::ops {

// How many elements are NaN or infinite.
template <Real T, Backend B>
int64_t count_nonfinite(const Tensor<T, B>& x) {
  x.require_nonempty("ops::count_nonfinite");
  Tensor<T, B> count({1});
  sum_axes(x, 1, 1, x.numel(), count, NonFinite{});
  return static_cast<int64_t>(count.to_host()[0]);
}

}  // namespace haze::ops
