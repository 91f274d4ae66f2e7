#pragma once
// DDIM (Song, Meng & Ermon 2021, eq. 12): from t to the previous timestep s,
//   x_s = sqrt(ab_s) x0 + sqrt(1 - ab_s - sigma^2) eps + sigma z,
//   sigma = eta sqrt((1 - ab_s) / (1 - ab_t)) sqrt(1 - ab_t / ab_s).
// eta = 0 is deterministic (the probability-flow ODE); eta = 1 is DDPM's
// ancestral variance. ab_s = 1 after the last step (diffusers'
// set_alpha_to_one; false takes ab_0 there instead). s is the next entry of
// the timesteps, or diffusers' t - T / N (previous_by_stride).
// With clip_x0, x0 is clamped to [-1, 1] and eps recomputed from the clamped
// x0 (haze's default; diffusers' use_clipped_model_output = true), or kept
// as the model gave it (eps_from_clipped_x0 false: diffusers' default).

#include <cmath>
#include <vector>

#include "haze/core/generator.hpp"
#include "haze/ops/random.hpp"
#include "haze/sample/denoiser.hpp"
#include "haze/sample/timesteps.hpp"

namespace haze::sample {

namespace detail {
// One DDIM step at element i, in one pass: the expressions of the ops it
// stands for (ops::lincomb's a x + b y, ClampUnit), in their order, so the
// same bits as those ops run one after another.
template <class T>
struct DdimStep {
  T* x;
  const T* out;
  const T* noise;  // null: sigma = 0
  T x0_a, x0_b;    // x0 = x0_a x + x0_b out
  T eps_a, eps_b;    // eps = eps_a x + eps_b out, or from the clamped x0: eps = eps_a x + eps_b x0
  bool clip;         // x0 clamped to [-1, 1] first
  bool eps_from_x0;  // with clip: eps from the clamped x0
  T a, b, c;         // x <- a x0 + b eps (+ c noise)
  HAZE_HD void operator()(int64_t i) const {
    const T xi = x[i];
    T x0 = x0_a * xi + x0_b * out[i];
    T eps;
    if (clip) x0 = ClampUnit{}(x0);
    if (clip && eps_from_x0) {
      eps = eps_a * xi + eps_b * x0;
    } else {
      eps = eps_a * xi + eps_b * out[i];
    }
    x[i] = noise ? a * x0 + b * eps + c * noise[i] : a * x0 + b * eps;
  }
};
}  // namespace detail

struct DdimOptions {
  int steps = 50;  // 0: every training timestep
  double eta = 0.0;
  Spacing spacing = Spacing::Leading;
  int steps_offset = 0;           // diffusers' steps_offset: added to a Leading grid
  std::vector<int> timesteps{};   // given: these timesteps, from noisy to clean (steps, spacing unused)
  bool clip_x0 = false;  // clamp x0 to [-1, 1] (image data)
  bool eps_from_clipped_x0 = true;  // with clip_x0: eps recomputed from the clamped x0
  bool set_alpha_to_one = true;     // ab after the last step: 1, or (false) ab_0
  bool previous_by_stride = false;  // diffusers' previous timestep t - T / N, not the next entry (timesteps.hpp)
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
    Tensor<T, B> noise;
    for (int i = 0; i < total; ++i) {
      const int t = ts_[i];
      const double ab = schedule_.alpha_bar(t);
      const double ab_prev = this->alpha_bar_next(i, options_.previous_by_stride,
                                                  options_.set_alpha_to_one ? 1.0 : schedule_.alpha_bar(0));
      const Tensor<T, B> out = checks.evaluate(denoiser, x, t, i, total);
      const double sigma = options_.eta * std::sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev));
      const double direction = std::sqrt(std::max(0.0, 1 - ab_prev - sigma * sigma));
      if (sigma > 0) {
        if (noise.empty()) noise = Tensor<T, B>(x.shape());
        randn(noise, gen);
      }
      // x0 from the output, clamped if asked (and eps then recomputed from
      // it), then x_s = sqrt(ab_s) x0 + direction eps + sigma z.
      const Coefficients to_x0 = P::x0_from(ab);
      const bool eps_from_x0 = options_.clip_x0 && options_.eps_from_clipped_x0;
      const Coefficients to_eps =
          eps_from_x0 ? Coefficients{1 / std::sqrt(1 - ab), -std::sqrt(ab / (1 - ab))} : P::eps_from(ab);
      B::for_each_index(x.numel(), detail::DdimStep<T>{x.data(), out.data(), sigma > 0 ? noise.data() : nullptr,
                                                       T(to_x0.first), T(to_x0.second), T(to_eps.first),
                                                       T(to_eps.second), options_.clip_x0, eps_from_x0,
                                                       T(std::sqrt(ab_prev)), T(direction), T(sigma)});
      detail::report(options_.progress, i + 1, total);
    }
    checks.finish();
    return x;
  }
};

}  // namespace haze::sample
