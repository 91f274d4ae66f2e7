#pragma once
// Classifier-free guidance (Ho & Salimans 2022): a denoiser that mixes a
// conditional and an unconditional prediction,
//   out = uncond + scale (cond - uncond),
// scale = 1 being the conditional model alone and scale > 1 guiding harder
// (the paper's w is scale - 1). The mix is linear, so it is valid for every
// parameterization.

#include <utility>

#include "haze/core/error.hpp"
#include "haze/core/tensor.hpp"
#include "haze/ops/combine.hpp"

namespace haze::sample {

template <class Conditional, class Unconditional>
class Guided {
 public:
  Guided(Conditional conditional, Unconditional unconditional, double scale)
      : conditional_(std::move(conditional)), unconditional_(std::move(unconditional)), scale_(scale) {
    HAZE_REQUIRE(scale >= 0, "classifier-free guidance: scale must be >= 0, got ", scale);
  }

  template <class T, class B>
  Tensor<T, B> operator()(const Tensor<T, B>& x, double t) {
    Tensor<T, B> cond = conditional_(x, t);
    const Tensor<T, B> uncond = unconditional_(x, t);
    HAZE_REQUIRE(cond.shape() == uncond.shape(), "classifier-free guidance: conditional output ", cond.shape(),
                 " and unconditional output ", uncond.shape(), " differ");
    ops::lincomb(cond, scale_, cond, 1 - scale_, uncond);
    return cond;
  }

 private:
  Conditional conditional_;
  Unconditional unconditional_;
  double scale_;
};

}  // namespace haze::sample
