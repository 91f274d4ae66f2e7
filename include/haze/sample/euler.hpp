#pragma once
// Euler steps of the probability-flow ODE in sigma space (Karras et al. 2022,
// Algorithm 1 with the Heun correction off), and the ancestral variant that
// steps down to sigma_down and adds fresh noise of size sigma_up:
//   sigma_up = min(s', sqrt(s'^2 (s^2 - s'^2) / s^2)),  sigma_down = sqrt(s'^2 - sigma_up^2).
// x_T is the VP starting noise N(0, I); the result is x0.

#include <cmath>

#include "haze/core/generator.hpp"
#include "haze/ops/random.hpp"
#include "haze/sample/sigmas.hpp"

namespace haze::sample {

template <Prediction P = predict::Epsilon>
class Euler : public SigmaSampler {
 public:

  Euler(Schedule schedule, Options options) : SigmaSampler(std::move(schedule), std::move(options), "Euler") {}

  template <Real T, Backend B, Denoiser<T, B> D>
  Tensor<T, B> run(D&& denoiser, Tensor<T, B> x, Generator&) const {
    detail::require_start(x, "Euler");
    const auto& s = grid_.sigmas;
    const int total = static_cast<int>(grid_.ts.size());
    detail::OutputChecks<T, B> checks("Euler", total);
    Tensor<T, B> x0(x.shape()), scratch(x.shape());
    detail::to_sigma_space(x, s[0]);
    for (int i = 0; i < total; ++i) {
      detail::denoised<P>(denoiser, x, s[i], grid_.ts[i], scratch, x0, checks, i, total, options_.clip_x0);
      const double ratio = s[i + 1] / s[i];  // x~ + (s' - s)(x~ - D)/s
      ops::lincomb(x, ratio, x, 1 - ratio, x0);
      detail::report(options_.progress, i + 1, total);
    }
    checks.finish();
    return x;
  }
};

template <Prediction P = predict::Epsilon>
class EulerAncestral : public SigmaSampler {
 public:

  EulerAncestral(Schedule schedule, Options options) : SigmaSampler(std::move(schedule), std::move(options), "EulerAncestral") {}

  template <Real T, Backend B, Denoiser<T, B> D>
  Tensor<T, B> run(D&& denoiser, Tensor<T, B> x, Generator& gen) const {
    detail::require_start(x, "EulerAncestral");
    const auto& s = grid_.sigmas;
    const int total = static_cast<int>(grid_.ts.size());
    detail::OutputChecks<T, B> checks("EulerAncestral", total);
    Tensor<T, B> x0(x.shape()), scratch(x.shape()), noise(x.shape());
    detail::to_sigma_space(x, s[0]);
    for (int i = 0; i < total; ++i) {
      detail::denoised<P>(denoiser, x, s[i], grid_.ts[i], scratch, x0, checks, i, total, options_.clip_x0);
      const double next = s[i + 1];
      const double up = std::min(next, std::sqrt(next * next * (s[i] * s[i] - next * next) / (s[i] * s[i])));
      const double down = std::sqrt(next * next - up * up);
      const double ratio = down / s[i];
      if (up > 0) {
        randn(noise, gen);
        ops::lincomb(x, ratio, x, 1 - ratio, x0, up, noise);
      } else {
        ops::lincomb(x, ratio, x, 1 - ratio, x0);
      }
      detail::report(options_.progress, i + 1, total);
    }
    checks.finish();
    return x;
  }
};

}  // namespace haze::sample
