#pragma once
// DDIM (Song, Meng & Ermon 2021, eq. 12): from t to the previous timestep s,
//   x_s = sqrt(ab_s) x0 + sqrt(1 - ab_s - sigma^2) eps + sigma z,
//   sigma = eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s).
// eta = 0 is deterministic (the probability-flow ODE); eta = 1 is DDPM's
// ancestral variance. ab_s = 1 after the last step.

#include <cmath>
#include <vector>

#include "haze/core/generator.hpp"
#include "haze/ops/random.hpp"
#include "haze/sample/denoiser.hpp"
#include "haze/sample/timesteps.hpp"

namespace haze::sample {

struct DdimOptions {
  int steps = 50;  // 0: every training timestep
  double eta = 0.0;
  Spacing spacing = Spacing::Leading;
  bool clip_x0 = false;  // clamp x0 to [-1, 1] (image data)
  Progress progress = {};
};

template <Prediction P = predict::Epsilon>
class Ddim : public TimestepSampler<DdimOptions> {
  using Base = TimestepSampler<DdimOptions>;
  using Base::options_, Base::schedule_, Base::ts_;

 public:
  using Options = DdimOptions;

  Ddim(Schedule schedule, Options options) : Base(std::move(schedule), std::move(options)) {
    HAZE_REQUIRE(options_.eta >= 0 && options_.eta <= 1, "Ddim: eta must be in [0, 1], got ", options_.eta);
  }

  template <Real T, Backend B, Denoiser<T, B> D>
  Tensor<T, B> run(D&& denoiser, Tensor<T, B> x, Generator& gen) const {
    detail::require_start(x, "Ddim");
    detail::require_x0_defined<P>(schedule_, ts_.front(), "Ddim");
    const int total = this->total();
    detail::OutputChecks<T, B> checks("Ddim", total);
    Tensor<T, B> x0(x.shape()), eps(x.shape()), noise(x.shape());
    for (int i = 0; i < total; ++i) {
      const int t = ts_[i];
      const double ab = schedule_.alpha_bar(t);
      const double ab_prev = this->alpha_bar_next(i);
      const Tensor<T, B> out = checks.evaluate(denoiser, x, t, i, total);
      detail::split_prediction<P>(x, out, ab, x0, &eps);
      if (options_.clip_x0) {
        ops::map(x0, detail::ClampUnit{}, x0);
        ops::lincomb(eps, 1 / std::sqrt(1 - ab), x, -std::sqrt(ab / (1 - ab)), x0);
      }
      const double sigma = options_.eta * std::sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev));
      const double direction = std::sqrt(std::max(0.0, 1 - ab_prev - sigma * sigma));
      if (sigma > 0) {
        randn(noise, gen);
        ops::lincomb(x, std::sqrt(ab_prev), x0, direction, eps, sigma, noise);
      } else {
        ops::lincomb(x, std::sqrt(ab_prev), x0, direction, eps);
      }
      detail::report(options_.progress, i + 1, total);
    }
    checks.finish();
    return x;
  }
};

}  // namespace haze::sample
