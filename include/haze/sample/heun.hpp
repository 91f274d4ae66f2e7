#pragma once
// Heun's second-order method on the probability-flow ODE in sigma space
// (Karras et al. 2022, Algorithm 1, no churn): an Euler predictor to s',
// then the average of the slopes at s and s'. The last step (s' = 0) is a
// plain Euler step, so N steps cost 2N - 1 denoiser calls.

#include <cmath>

#include "haze/core/generator.hpp"
#include "haze/sample/sigmas.hpp"

namespace haze::sample {

template <Prediction P = predict::Epsilon>
class Heun : public SigmaSampler {
 public:

  Heun(Schedule schedule, Options options) : SigmaSampler(std::move(schedule), std::move(options), "Heun") {}

  template <Real T, Backend B, Denoiser<T, B> D>
  Tensor<T, B> run(D&& denoiser, Tensor<T, B> x, Generator&) const {
    detail::require_start(x, "Heun");
    const auto& s = grid_.sigmas;
    const int total = static_cast<int>(grid_.ts.size());
    detail::OutputChecks<T, B> checks("Heun", 2 * total);
    Tensor<T, B> x0(x.shape()), x0_next(x.shape()), predictor(x.shape()), scratch(x.shape());
    detail::to_sigma_space(x, s[0]);
    for (int i = 0; i < total; ++i) {
      detail::denoised<P>(denoiser, x, s[i], grid_.ts[i], scratch, x0, checks, i, total, options_.clip_x0);
      const double ratio = s[i + 1] / s[i];
      if (s[i + 1] == 0) {
        ops::lincomb(x, ratio, x, 1 - ratio, x0);
      } else {
        ops::lincomb(predictor, ratio, x, 1 - ratio, x0);
        detail::denoised<P>(denoiser, predictor, s[i + 1], grid_.ts[i + 1], scratch, x0_next, checks, i, total, options_.clip_x0);
        // x + h/2 ((x - D)/s + (x' - D')/s'),  h = s' - s
        const double h = s[i + 1] - s[i], a = h / (2 * s[i]), b = h / (2 * s[i + 1]);
        ops::lincomb(x, 1 + a, x, -a, x0, b, predictor);
        ops::axpy(static_cast<T>(-b), x0_next, x);
      }
      detail::report(options_.progress, i + 1, total);
    }
    checks.finish();
    return x;
  }
};

}  // namespace haze::sample
