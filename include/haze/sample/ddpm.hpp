#pragma once
// Ancestral sampling (Ho et al. 2020) on any subset of the training
// timesteps (Nichol & Dhariwal 2021, "respacing"): between consecutive
// visited timesteps t > s the chain is a single step with
//   beta' = 1 - ab_t / ab_s,  alpha' = 1 - beta',
// and x_s ~ q(x_s | x_t, x0_hat) = N(c0 x0_hat + ct x_t, var) with
//   c0 = sqrt(ab_s) beta' / (1 - ab_t),  ct = sqrt(alpha') (1 - ab_s) / (1 - ab_t),
//   var = beta' (1 - ab_s) / (1 - ab_t)  (FixedSmall, the true posterior) or beta' (FixedLarge).
// With all T steps this is DDPM exactly. No noise is added on the last step.

#include <cmath>
#include <vector>

#include "haze/core/generator.hpp"
#include "haze/ops/random.hpp"
#include "haze/sample/denoiser.hpp"
#include "haze/sample/timesteps.hpp"

namespace haze::sample {

enum class Variance { FixedSmall, FixedLarge };

struct DdpmOptions {
  int steps = 0;  // 0: every training timestep
  Spacing spacing = Spacing::Leading;
  int steps_offset = 0;           // diffusers' steps_offset: added to a Leading grid
  std::vector<int> timesteps{};   // given: these timesteps, from noisy to clean (steps, spacing unused)
  Variance variance = Variance::FixedSmall;
  bool clip_x0 = false;
  bool previous_by_stride = false;  // diffusers' previous timestep t - T / N, not the next entry (timesteps.hpp)
  Progress progress = {};
};

template <Prediction P = predict::Epsilon>
class Ddpm : public TimestepSampler<DdpmOptions> {
  using Base = TimestepSampler<DdpmOptions>;
  using Base::options_, Base::schedule_, Base::ts_;

 public:
  using Options = DdpmOptions;

  Ddpm(Schedule schedule, Options options) : Base(std::move(schedule), std::move(options)) {}

  template <Real T, Backend B, Denoiser<T, B> D>
  Tensor<T, B> run(D&& denoiser, Tensor<T, B> x, Generator& gen) const {
    detail::require_start(x, "Ddpm");
    detail::require_x0_defined<P>(schedule_, ts_.front(), "Ddpm");
    const int total = this->total();
    detail::OutputChecks<T, B> checks("Ddpm", total);
    Tensor<T, B> x0(x.shape()), noise(x.shape());
    for (int i = 0; i < total; ++i) {
      const int t = ts_[i];
      const bool last = i + 1 == total;
      const double ab = schedule_.alpha_bar(t);
      const double ab_prev = this->alpha_bar_next(i, options_.previous_by_stride);
      const double beta = 1 - ab / ab_prev, alpha = 1 - beta;
      const Tensor<T, B> out = checks.evaluate(denoiser, x, t, i, total);
      detail::split_prediction<P>(x, out, ab, x0);
      if (options_.clip_x0) ops::map(x0, detail::ClampUnit{}, x0);
      const double c0 = std::sqrt(ab_prev) * beta / (1 - ab);
      const double ct = std::sqrt(alpha) * (1 - ab_prev) / (1 - ab);
      if (last) {
        ops::lincomb(x, c0, x0, ct, x);
      } else {
        const double variance =
            options_.variance == Variance::FixedSmall ? beta * (1 - ab_prev) / (1 - ab) : beta;
        randn(noise, gen);
        ops::lincomb(x, c0, x0, ct, x, std::sqrt(variance), noise);
      }
      detail::report(options_.progress, i + 1, total);
    }
    checks.finish();
    return x;
  }
};

}  // namespace haze::sample
