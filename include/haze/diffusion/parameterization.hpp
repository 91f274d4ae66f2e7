#pragma once
// What the network predicts. With x_t = sqrt(ab) x0 + sqrt(1 - ab) eps
// (ab = alpha_bar_t), each parameterization is a linear map between
// (x_t, model output) and (x0, eps), so every conversion is one lincomb:
//   predict::Epsilon   output = eps                                (DDPM)
//   predict::Sample    output = x0
//   predict::Velocity  output = v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022)
// Each gives
//   x0_from(ab), eps_from(ab): coefficients {on x_t, on output}
//   target(ab):                coefficients {on x0, on eps} of the training target
//   min_snr_weight(snr, gamma): the Min-SNR-gamma loss weight (Hang et al. 2023)
//     that makes the loss equal min(snr, gamma) times the x0-space error.

#include <algorithm>
#include <cmath>
#include <string_view>

namespace haze {

struct Coefficients {
  double first;   // on x_t (x0_from, eps_from) or on x0 (target)
  double second;  // on the model output, or on eps
};

namespace predict {

struct Epsilon {
  static constexpr std::string_view name = "epsilon";
  static Coefficients x0_from(double ab) { return {1 / std::sqrt(ab), -std::sqrt(1 - ab) / std::sqrt(ab)}; }
  static Coefficients eps_from(double) { return {0, 1}; }
  static Coefficients target(double) { return {0, 1}; }
  // ||eps - eps_hat||^2 = snr ||x0 - x0_hat||^2
  static double min_snr_weight(double snr, double gamma) { return snr <= gamma ? 1.0 : gamma / snr; }
};

struct Sample {
  static constexpr std::string_view name = "sample";
  static Coefficients x0_from(double) { return {0, 1}; }
  static Coefficients eps_from(double ab) { return {1 / std::sqrt(1 - ab), -std::sqrt(ab) / std::sqrt(1 - ab)}; }
  static Coefficients target(double) { return {1, 0}; }
  static double min_snr_weight(double snr, double gamma) { return std::min(snr, gamma); }
};

struct Velocity {
  static constexpr std::string_view name = "velocity";
  static Coefficients x0_from(double ab) { return {std::sqrt(ab), -std::sqrt(1 - ab)}; }
  static Coefficients eps_from(double ab) { return {std::sqrt(1 - ab), std::sqrt(ab)}; }
  static Coefficients target(double ab) { return {-std::sqrt(1 - ab), std::sqrt(ab)}; }
  // ||v - v_hat||^2 = (snr + 1) ||x0 - x0_hat||^2
  static double min_snr_weight(double snr, double gamma) { return std::min(snr, gamma) / (snr + 1); }
};

}  // namespace predict

template <class P>
concept Prediction = requires(double v) {
  { P::name } -> std::convertible_to<std::string_view>;
  { P::x0_from(v) } -> std::same_as<Coefficients>;
  { P::eps_from(v) } -> std::same_as<Coefficients>;
  { P::target(v) } -> std::same_as<Coefficients>;
  { P::min_snr_weight(v, v) } -> std::same_as<double>;
};

}  // namespace haze
