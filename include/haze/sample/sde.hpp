#pragma once
// The reverse-time VP SDE (Song et al. 2021, "Score-Based Generative
// Modeling through SDEs"):  dx = [-beta/2 x - beta score] dt + sqrt(beta) dw,
// score = -eps / sqrt(1 - ab), integrated backwards by Euler-Maruyama over
// the visited timesteps. Between t and the previous timestep s the
// integrated beta is  B = log(ab_s / ab_t)  (= sum of the betas, to first
// order), so one step is
//   x_s = (1 + B/2) x_t - B / sqrt(1 - ab_t) eps + sqrt(B) z.
// No noise is added on the last step. This is the same model read as an SDE
// rather than as DDPM's discrete chain; the two agree as the step shrinks.

#include <cmath>
#include <vector>

#include "haze/core/generator.hpp"
#include "haze/ops/random.hpp"
#include "haze/sample/denoiser.hpp"
#include "haze/sample/timesteps.hpp"

namespace haze::sample {

struct SdeOptions {
  int steps = 0;  // 0: every training timestep
  Spacing spacing = Spacing::Leading;
  int steps_offset = 0;           // diffusers' steps_offset: added to a Leading grid
  std::vector<int> timesteps{};   // given: these timesteps, from noisy to clean (steps, spacing unused)
  Progress progress = {};
};

template <Prediction P = predict::Epsilon>
class ReverseSde : public TimestepSampler<SdeOptions> {
  using Base = TimestepSampler<SdeOptions>;
  using Base::options_, Base::schedule_, Base::ts_;

 public:
  using Options = SdeOptions;

  ReverseSde(Schedule schedule, Options options) : Base(std::move(schedule), std::move(options)) {
    HAZE_REQUIRE(schedule_.alpha_bar(ts_.front()) > 0, "ReverseSde: alpha_bar(t = ", ts_.front(),
                 ") is 0 (zero terminal SNR): the integrated beta is infinite there");
  }

  template <Real T, Backend B, Denoiser<T, B> D>
  Tensor<T, B> run(D&& denoiser, Tensor<T, B> x, Generator& gen) const {
    detail::require_start(x, "ReverseSde");
    const int total = this->total();
    detail::OutputChecks<T, B> checks("ReverseSde", total);
    Tensor<T, B> eps(x.shape()), noise(x.shape());
    for (int i = 0; i < total; ++i) {
      const int t = ts_[i];
      const bool last = i + 1 == total;
      const double ab = schedule_.alpha_bar(t);
      const double ab_prev = this->alpha_bar_next(i);
      const double integrated_beta = std::log(ab_prev / ab);
      const Tensor<T, B> out = checks.evaluate(denoiser, x, t, i, total);
      const Coefficients e = P::eps_from(ab);
      ops::lincomb(eps, e.first, x, e.second, out);
      const double drift_x = 1 + integrated_beta / 2, drift_eps = -integrated_beta / std::sqrt(1 - ab);
      if (last) {
        ops::lincomb(x, drift_x, x, drift_eps, eps);
      } else {
        randn(noise, gen);
        ops::lincomb(x, drift_x, x, drift_eps, eps, std::sqrt(integrated_beta), noise);
      }
      detail::report(options_.progress, i + 1, total);
    }
    checks.finish();
    return x;
  }
};

}  // namespace haze::sample
