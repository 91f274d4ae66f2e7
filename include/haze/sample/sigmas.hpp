#pragma once
// The sigma-space view (Karras et al. 2022, "EDM"): with
//   sigma = sqrt((1 - ab) / ab)  and  x~ = x_t / sqrt(ab) = x0 + sigma eps,
// sampling integrates the probability-flow ODE  dx~/dsigma = (x~ - D(x~, sigma)) / sigma
// from sigma_max down to 0, D being the denoised estimate (the model's x0).
// This header holds the sigma grid the Euler, Heun and DPM-Solver++ samplers
// walk, and the denoised estimate D evaluated through a VP-trained model.

#include <cmath>
#include <vector>

#include "haze/sample/denoiser.hpp"
#include "haze/sample/timesteps.hpp"

namespace haze::sample {

struct SigmaGrid {
  std::vector<double> sigmas;  // N + 1 values, decreasing, the last one 0
  std::vector<double> ts;      // the N (possibly fractional) timesteps of sigmas[0 .. N-1]
};

struct SigmaOptions {
  int steps = 25;
  Spacing spacing = Spacing::Leading;  // used when karras is false
  int steps_offset = 0;                // diffusers' steps_offset: added to a Leading grid
  std::vector<double> sigmas{};        // given: these sigmas, decreasing (steps, spacing and karras unused)
  bool karras = false;                 // Karras et al. 2022 eq. 5 spacing in sigma
  double rho = 7.0;
  bool clip_x0 = false;  // clamp the denoised estimate to [-1, 1] (image data; see below)
  Progress progress = {};
};

// The alpha_bar the sigma-space samplers give a zero-terminal-SNR
// schedule's last timestep, where alpha_bar is 0 and sigma infinite:
// diffusers' 2^-24 (sigma about 4096), so that the grid starts somewhere.
inline constexpr double zero_snr_terminal_alpha_bar = 0x1p-24;

// karras: sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho
// between the schedule's own sigma(0) and sigma(T-1); otherwise the sigmas of
// the spaced integer timesteps, or the given ones. sigma(T-1) is infinite on
// a zero-terminal-SNR schedule: it is taken as sigma at alpha_bar 2^-24, and
// a sigma above sigma(T-2) maps to a t between T-2 and T-1 by that value.
// (diffusers does the same, and also lets sigma(T-2) exceed it, as the
// linear schedule's does; haze refuses a grid that would not decrease.)
inline SigmaGrid sigma_grid(const Schedule& schedule, const SigmaOptions& options, const char* sampler) {
  HAZE_REQUIRE(options.rho > 0, sampler, ": rho must be > 0, got ", options.rho);
  const int T = schedule.steps();
  const bool zero_snr = !std::isfinite(schedule.sigma(T - 1));
  const double smax = zero_snr ? Schedule::sigma_of(zero_snr_terminal_alpha_bar) : schedule.sigma(T - 1);
  const auto sigma_of_t = [&](int t) { return t == T - 1 ? smax : schedule.sigma(t); };
  const auto t_of_sigma = [&](double sigma) {
    HAZE_REQUIRE(sigma <= smax, sampler, ": sigma ", sigma, " is above the schedule's largest, ", smax);
    if (!zero_snr || T < 2 || sigma <= schedule.sigma(T - 2)) return schedule.t_at_sigma(sigma);
    const double low = std::log(schedule.sigma(T - 2));
    return T - 2 + (std::log(sigma) - low) / (std::log(smax) - low);
  };
  SigmaGrid grid;
  if (!options.sigmas.empty()) {
    const std::vector<double>& given = options.sigmas;
    for (size_t i = 0; i < given.size(); ++i) {
      HAZE_REQUIRE(std::isfinite(given[i]) && given[i] > 0, sampler, ": sigmas[", i, "] = ", given[i],
                   " is not finite and > 0");
      HAZE_REQUIRE(i == 0 || given[i] < given[i - 1], sampler, ": sigmas must decrease, but sigmas[", i, "] = ",
                   given[i], " follows ", given[i - 1]);
      grid.sigmas.push_back(given[i]);
      grid.ts.push_back(t_of_sigma(given[i]));
    }
  } else if (options.karras) {
    HAZE_REQUIRE(options.steps >= 1 && options.steps <= T, sampler, ": need 1 <= steps <= ", T, ", got ",
                 options.steps);
    const int n = options.steps;
    const double smin = schedule.sigma(0);
    const double a = std::pow(smax, 1 / options.rho), b = std::pow(smin, 1 / options.rho);
    for (int i = 0; i < n; ++i) {
      double s = i == 0 ? smax : (i == n - 1 ? smin : std::pow(a + double(i) / (n - 1) * (b - a), options.rho));
      grid.sigmas.push_back(s);
      grid.ts.push_back(i == 0 ? T - 1 : (i == n - 1 ? 0.0 : t_of_sigma(s)));
    }
  } else {
    for (int t : timesteps(T, options.steps, options.spacing, options.steps_offset)) {
      // (On a zero-terminal-SNR linear schedule sigma(T-2) is above the
      // clamped sigma(T-1): a grid with both would not decrease.)
      HAZE_REQUIRE(grid.sigmas.empty() || sigma_of_t(t) < grid.sigmas.back(), sampler, ": the sigma of t = ", t, ", ",
                   sigma_of_t(t), ", is not below the previous step's ", grid.sigmas.back(),
                   " (zero terminal SNR clamps sigma(", T - 1, ") to ", smax, "): take fewer steps");
      grid.sigmas.push_back(sigma_of_t(t));
      grid.ts.push_back(t);
    }
  }
  grid.sigmas.push_back(0.0);
  return grid;
}

// What Euler, EulerAncestral, Heun and DpmSolverPP2M share: the schedule,
// their options and the sigma grid built from them.
class SigmaSampler {
 public:
  using Options = SigmaOptions;
  const SigmaGrid& grid() const { return grid_; }
  // The timesteps the denoiser is called at, as every sampler says them
  // (here possibly fractional; TimestepSampler's are integers).
  const std::vector<double>& timesteps_used() const { return grid_.ts; }

 protected:
  SigmaSampler(Schedule schedule, Options options, const char* name)
      : schedule_(std::move(schedule)), options_(std::move(options)), grid_(sigma_grid(schedule_, options_, name)) {}

  Schedule schedule_;
  Options options_;
  SigmaGrid grid_;
};

namespace detail {

// D(x~, sigma): the model sees x_t = x~ / sqrt(1 + sigma^2) at timestep t;
// its output becomes x0. `scratch` receives x_t.
template <Prediction P, class T, class B, class D>
void denoised(D& denoiser, const Tensor<T, B>& x_tilde, double sigma, double t, Tensor<T, B>& scratch,
              Tensor<T, B>& x0, OutputChecks<T, B>& checks, int step, int total, bool clip_x0) {
  ops::lincomb(scratch, 1 / std::sqrt(1 + sigma * sigma), x_tilde, 0.0, x_tilde);
  const Tensor<T, B> out = checks.evaluate(denoiser, scratch, t, step, total);
  split_prediction<P>(scratch, out, Schedule::alpha_bar_of_sigma(sigma), x0);
  // At large sigma an epsilon model's x0 = x~ - sigma eps multiplies the
  // model's error by sigma (157 at the end of the linear schedule); clamping
  // to the data range keeps one bad early estimate from saturating the
  // image (the thresholding DPM-Solver++ recommends for pixel-space models).
  if (clip_x0) ops::map(x0, ClampUnit{}, x0);
}

// x~ at sigma_max from x_T ~ N(0, I): x~ = x_T sqrt(1 + sigma_max^2).
template <class T, class B>
void to_sigma_space(Tensor<T, B>& x, double sigma_max) {
  ops::scale(x, static_cast<T>(std::sqrt(1 + sigma_max * sigma_max)));
}

}  // namespace detail
}  // namespace haze::sample
