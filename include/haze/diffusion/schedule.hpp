#pragma once
// Noise schedules: the betas of the forward Markov chain
//   x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps,   t = 0 .. steps-1
// (t = 0 is the papers' step 1), and the tables every other piece reads.
//
// Two ways to name a schedule, one implementation:
//  - compile time, as a policy type: schedule::Cosine<1000>,
//    schedule::ZeroTerminalSnr<schedule::Linear<>>; invalid arguments fail
//    to compile with a static_assert that says why;
//  - run time, from a name and numbers (command lines, checkpoint metadata):
//    Schedule::make("cosine", 1000, {0.008, 0.999}); invalid input throws.
// Both end in the same free functions below, so they agree to the bit.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <limits>
#include <numbers>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "haze/core/error.hpp"

namespace haze {

namespace schedule {

// ---- the beta sequences ----------------------------------------------------

// numpy.linspace's formula: start + i * step, with the last point exact.
inline std::vector<double> linspace(double start, double end, int n) {
  std::vector<double> v(static_cast<size_t>(n));
  const double step = n > 1 ? (end - start) / (n - 1) : 0.0;
  for (int i = 0; i < n; ++i) v[i] = start + i * step;
  if (n > 1) v[n - 1] = end;
  return v;
}

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// DDPM (Ho et al. 2020): betas evenly spaced.
inline std::vector<double> linear_betas(int steps, double start, double end) {
  HAZE_REQUIRE(steps >= 1, "schedule linear: steps must be >= 1, got ", steps);
  HAZE_REQUIRE(0 < start && start <= end && end < 1, "schedule linear: need 0 < start <= end < 1, got start ",
               start, ", end ", end);
  return linspace(start, end, steps);
}

// Latent / Stable Diffusion: square roots of the betas evenly spaced.
inline std::vector<double> scaled_linear_betas(int steps, double start, double end) {
  HAZE_REQUIRE(steps >= 1, "schedule scaled_linear: steps must be >= 1, got ", steps);
  HAZE_REQUIRE(0 < start && start <= end && end < 1, "schedule scaled_linear: need 0 < start <= end < 1, got start ",
               start, ", end ", end);
  std::vector<double> b = linspace(std::sqrt(start), std::sqrt(end), steps);
  for (double& v : b) v *= v;
  return b;
}

// Improved DDPM (Nichol & Dhariwal 2021): alpha_bar(u) = cos^2((u + s)/(1 + s) pi/2).
inline std::vector<double> cosine_betas(int steps, double s, double max_beta) {
  HAZE_REQUIRE(steps >= 1, "schedule cosine: steps must be >= 1, got ", steps);
  HAZE_REQUIRE(s > 0, "schedule cosine: offset s must be > 0, got ", s);
  HAZE_REQUIRE(0 < max_beta && max_beta < 1, "schedule cosine: max_beta must be in (0, 1), got ", max_beta);
  const auto f = [s](double u) {
    const double c = std::cos((u + s) / (1 + s) * std::numbers::pi / 2);
    return c * c;
  };
  std::vector<double> b(static_cast<size_t>(steps));
  for (int i = 0; i < steps; ++i)
    b[i] = std::min(1 - f(double(i + 1) / steps) / f(double(i) / steps), max_beta);
  return b;
}

// Jabri, Fleet & Chen 2023: alpha_bar(u) proportional to
// sigmoid(end/tau) - sigmoid((u (end - start) + start)/tau), u in [0, 1].
inline std::vector<double> sigmoid_betas(int steps, double start, double end, double tau) {
  HAZE_REQUIRE(steps >= 1, "schedule sigmoid: steps must be >= 1, got ", steps);
  HAZE_REQUIRE(start < end, "schedule sigmoid: need start < end, got start ", start, ", end ", end);
  HAZE_REQUIRE(tau > 0, "schedule sigmoid: tau must be > 0, got ", tau);
  const double v_start = sigmoid(start / tau), v_end = sigmoid(end / tau);
  const std::vector<double> u = linspace(0.0, 1.0, steps + 1);
  std::vector<double> ab(u.size());
  for (size_t i = 0; i < u.size(); ++i) ab[i] = (v_end - sigmoid((u[i] * (end - start) + start) / tau)) / (v_end - v_start);
  const double ab0 = ab[0];
  for (double& v : ab) v /= ab0;
  std::vector<double> b(static_cast<size_t>(steps));
  for (int i = 0; i < steps; ++i) b[i] = std::clamp(1 - ab[i + 1] / ab[i], 0.0, 0.999);
  return b;
}

// The other "sigmoid": betas themselves follow a sigmoid over [-6, 6].
inline std::vector<double> sigmoid_beta_betas(int steps, double start, double end) {
  HAZE_REQUIRE(steps >= 1, "schedule sigmoid_beta: steps must be >= 1, got ", steps);
  HAZE_REQUIRE(0 < start && start <= end && end < 1, "schedule sigmoid_beta: need 0 < start <= end < 1, got start ",
               start, ", end ", end);
  std::vector<double> b = linspace(-6.0, 6.0, steps);
  for (double& v : b) v = sigmoid(v) * (end - start) + start;
  return b;
}

// Lin et al. 2024, "Common diffusion noise schedules and sample steps are
// flawed", Algorithm 1: shift and scale sqrt(alpha_bar) so that it keeps its
// first value and reaches exactly 0 at the last step (zero terminal SNR).
inline std::vector<double> rescale_zero_terminal_snr(std::vector<double> betas) {
  HAZE_REQUIRE(betas.size() >= 2, "zero terminal SNR: needs at least 2 steps, got ", betas.size());
  std::vector<double> sqrt_ab(betas.size());
  double ab = 1;
  for (size_t i = 0; i < betas.size(); ++i) sqrt_ab[i] = std::sqrt(ab *= 1 - betas[i]);
  const double first = sqrt_ab.front(), last = sqrt_ab.back();
  HAZE_REQUIRE(first > last, "zero terminal SNR: alpha_bar must decrease over the schedule");
  std::vector<double> ab_new(betas.size());
  for (size_t i = 0; i < betas.size(); ++i) {
    const double v = (sqrt_ab[i] - last) * first / (first - last);
    ab_new[i] = v * v;
  }
  betas[0] = 1 - ab_new[0];
  for (size_t i = 1; i < betas.size(); ++i) betas[i] = 1 - ab_new[i] / ab_new[i - 1];
  return betas;
}

// ---- compile-time policies -------------------------------------------------
// Each policy names its kind and parameters (for descriptions and checkpoint
// metadata) and computes its betas with the functions above.

template <int Steps = 1000, double Start = 1e-4, double End = 2e-2>
struct Linear {
  static_assert(Steps >= 1, "schedule::Linear: Steps must be >= 1");
  static_assert(0 < Start && Start <= End && End < 1, "schedule::Linear: need 0 < Start <= End < 1");
  static constexpr int steps = Steps;
  static constexpr std::string_view kind = "linear";
  static std::vector<double> parameters() { return {Start, End}; }
  static std::vector<double> betas() { return linear_betas(Steps, Start, End); }
};

template <int Steps = 1000, double Start = 8.5e-4, double End = 1.2e-2>
struct ScaledLinear {
  static_assert(Steps >= 1, "schedule::ScaledLinear: Steps must be >= 1");
  static_assert(0 < Start && Start <= End && End < 1, "schedule::ScaledLinear: need 0 < Start <= End < 1");
  static constexpr int steps = Steps;
  static constexpr std::string_view kind = "scaled_linear";
  static std::vector<double> parameters() { return {Start, End}; }
  static std::vector<double> betas() { return scaled_linear_betas(Steps, Start, End); }
};

template <int Steps = 1000, double S = 0.008, double MaxBeta = 0.999>
struct Cosine {
  static_assert(Steps >= 1, "schedule::Cosine: Steps must be >= 1");
  static_assert(S > 0, "schedule::Cosine: the offset S must be > 0 (beta_0 would be 0)");
  static_assert(0 < MaxBeta && MaxBeta < 1, "schedule::Cosine: MaxBeta must be in (0, 1)");
  static constexpr int steps = Steps;
  static constexpr std::string_view kind = "cosine";
  static std::vector<double> parameters() { return {S, MaxBeta}; }
  static std::vector<double> betas() { return cosine_betas(Steps, S, MaxBeta); }
};

template <int Steps = 1000, double Start = -3.0, double End = 3.0, double Tau = 1.0>
struct Sigmoid {
  static_assert(Steps >= 1, "schedule::Sigmoid: Steps must be >= 1");
  static_assert(Start < End, "schedule::Sigmoid: need Start < End");
  static_assert(Tau > 0, "schedule::Sigmoid: Tau must be > 0");
  static constexpr int steps = Steps;
  static constexpr std::string_view kind = "sigmoid";
  static std::vector<double> parameters() { return {Start, End, Tau}; }
  static std::vector<double> betas() { return sigmoid_betas(Steps, Start, End, Tau); }
};

template <int Steps = 1000, double Start = 1e-4, double End = 2e-2>
struct SigmoidBeta {
  static_assert(Steps >= 1, "schedule::SigmoidBeta: Steps must be >= 1");
  static_assert(0 < Start && Start <= End && End < 1, "schedule::SigmoidBeta: need 0 < Start <= End < 1");
  static constexpr int steps = Steps;
  static constexpr std::string_view kind = "sigmoid_beta";
  static std::vector<double> parameters() { return {Start, End}; }
  static std::vector<double> betas() { return sigmoid_beta_betas(Steps, Start, End); }
};

// Any policy, rescaled to zero terminal SNR.
template <class Policy>
struct ZeroTerminalSnr {
  static_assert(Policy::steps >= 2, "schedule::ZeroTerminalSnr: needs at least 2 steps");
  static constexpr int steps = Policy::steps;
  static constexpr std::string_view kind = Policy::kind;
  static constexpr bool zero_terminal_snr = true;
  static std::vector<double> parameters() { return Policy::parameters(); }
  static std::vector<double> betas() { return rescale_zero_terminal_snr(Policy::betas()); }
};

template <class Policy>
concept BetaPolicy = requires {
  { Policy::steps } -> std::convertible_to<int>;
  { Policy::kind } -> std::convertible_to<std::string_view>;
  { Policy::betas() } -> std::same_as<std::vector<double>>;
  { Policy::parameters() } -> std::same_as<std::vector<double>>;
};

template <class Policy>
constexpr bool is_zero_terminal_snr() {
  if constexpr (requires { Policy::zero_terminal_snr; }) return Policy::zero_terminal_snr;
  else return false;
}

// The parameters each kind takes, in the policies' order, with their defaults.
inline std::vector<double> default_parameters(std::string_view kind) {
  if (kind == "linear" || kind == "sigmoid_beta") return {1e-4, 2e-2};
  if (kind == "scaled_linear") return {8.5e-4, 1.2e-2};
  if (kind == "cosine") return {0.008, 0.999};
  if (kind == "sigmoid") return {-3, 3, 1};
  HAZE_FAIL("schedule: unknown kind '", kind, "' (known: linear, scaled_linear, cosine, sigmoid, sigmoid_beta)");
}

// Betas for a schedule named at run time, parameters as default_parameters() orders them.
inline std::vector<double> betas_by_name(std::string_view kind, int steps, std::span<const double> p) {
  const size_t expected = default_parameters(kind).size();
  HAZE_REQUIRE(p.size() == expected, "schedule ", kind, ": expects ", expected, " parameters, got ", p.size());
  if (kind == "linear") return linear_betas(steps, p[0], p[1]);
  if (kind == "scaled_linear") return scaled_linear_betas(steps, p[0], p[1]);
  if (kind == "cosine") return cosine_betas(steps, p[0], p[1]);
  if (kind == "sigmoid") return sigmoid_betas(steps, p[0], p[1], p[2]);
  return sigmoid_beta_betas(steps, p[0], p[1]);
}

}  // namespace schedule
}  // namespace haze
