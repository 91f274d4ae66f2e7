#pragma once
// Global-norm gradient clipping: with n = sqrt(sum over every gradient
// element of g^2), scale all gradients by max_norm / n when n > max_norm.
// Returns n before clipping. A NaN or infinite norm is returned as is and
// nothing is scaled: the caller decides (the Trainer stops with the step).

#include <cmath>

#include "haze/core/error.hpp"
#include "haze/nn/module.hpp"
#include "haze/ops/elementwise.hpp"
#include "haze/ops/reduce.hpp"

namespace haze::train {

template <Real T, Backend B>
double global_grad_norm(const nn::Parameters<T, B>& params) {
  // One running sum on the backend (beta = 1 adds each tensor's squares to
  // it) and one copy to the host, not a device round trip per parameter.
  Tensor<T, B> squares = Tensor<T, B>::zeros({1});
  for (const auto& p : params) ops::sum_axes(*p.grad, 1, 1, p.grad->numel(), squares, ops::Square{}, T(1));
  return std::sqrt(double(squares.to_host()[0]));
}

template <Real T, Backend B>
double clip_grad_norm(const nn::Parameters<T, B>& params, double max_norm) {
  HAZE_REQUIRE(max_norm > 0, "clip_grad_norm: max_norm must be > 0, got ", max_norm);
  const double norm = global_grad_norm(params);
  if (std::isfinite(norm) && norm > max_norm)
    for (const auto& p : params) ops::scale(*p.grad, T(max_norm / norm));
  return norm;
}

}  // namespace haze::train
