#pragma once
// Schedule: the double-precision tables derived from a beta sequence, which
// the forward process, the losses and every sampler read. NoiseSchedule<P>
// is the same thing built from a compile-time policy (schedule.hpp).
//
// Besides the integer timesteps, sigma-space samplers need a continuous t:
// sigma_at(t) interpolates log sigma linearly between integer steps and
// t_at_sigma inverts it, so a denoiser handed a fractional t recovers the
// sampler's sigma exactly (to rounding).

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/diffusion/schedule.hpp"

namespace haze {

class Schedule {
 public:
  // More steps than this are refused when a schedule is built by name (from
  // a file, say): its tables take 8 bytes a step each, and diffusers' models
  // use 1000 to 4000.
  static constexpr int max_steps = 1 << 20;

  // Built from a name and numbers (see schedule::default_parameters for each
  // kind's list; an empty list means the defaults); validates them.
  static Schedule make(std::string_view kind, int steps, std::vector<double> parameters = {},
                       bool zero_terminal_snr = false) {
    HAZE_REQUIRE(steps >= 1 && steps <= max_steps, "schedule ", kind, ": steps must be in [1, ", max_steps, "], got ",
                 steps);
    if (parameters.empty()) parameters = schedule::default_parameters(kind);
    std::vector<double> betas = schedule::betas_by_name(kind, steps, parameters);
    if (zero_terminal_snr) betas = schedule::rescale_zero_terminal_snr(std::move(betas));
    return Schedule(std::string(kind), std::move(parameters), zero_terminal_snr, std::move(betas));
  }

  int steps() const { return static_cast<int>(beta_.size()); }
  const std::string& kind() const { return kind_; }
  const std::vector<double>& parameters() const { return parameters_; }
  bool zero_terminal_snr() const { return zero_terminal_snr_; }
  // e.g. "cosine(steps=1000; 0.008, 0.999)".
  std::string description() const {
    std::ostringstream os;
    os << kind_ << "(steps=" << steps();
    for (size_t i = 0; i < parameters_.size(); ++i) {
      char text[32];  // shortest text that reads back as the same double
      const auto end = std::to_chars(text, text + sizeof text, parameters_[i]).ptr;
      os << (i ? ", " : "; ") << std::string_view(text, end - text);
    }
    os << (zero_terminal_snr_ ? "; zero terminal SNR)" : ")");
    return os.str();
  }

  double beta(int t) const { return beta_[index(t)]; }
  double alpha(int t) const { return 1.0 - beta_[index(t)]; }
  double alpha_bar(int t) const { return alpha_bar_[index(t)]; }
  // alpha_bar at t - 1, with alpha_bar(-1) = 1 (the clean data).
  double alpha_bar_prev(int t) const { return t == 0 ? 1.0 : alpha_bar_[index(t) - 1]; }
  double sqrt_alpha_bar(int t) const { return std::sqrt(alpha_bar(t)); }
  double sqrt_one_minus_alpha_bar(int t) const { return std::sqrt(1.0 - alpha_bar(t)); }
  // Variance of q(x_{t-1} | x_t, x_0): beta_t (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t).
  double posterior_variance(int t) const { return posterior_variance_[index(t)]; }
  // Its log with the t = 0 entry (a zero variance) replaced by the t = 1 one, as in DDPM.
  double posterior_log_variance_clipped(int t) const {
    const int i = index(t);
    return std::log(posterior_variance_[i == 0 && steps() > 1 ? 1 : i]);
  }
  // Mean of q(x_{t-1} | x_t, x_0) = coef_x0(t) x_0 + coef_xt(t) x_t.
  double posterior_mean_coef_x0(int t) const {
    return beta(t) * std::sqrt(alpha_bar_prev(t)) / (1.0 - alpha_bar(t));
  }
  double posterior_mean_coef_xt(int t) const {
    return (1.0 - alpha_bar_prev(t)) * std::sqrt(alpha(t)) / (1.0 - alpha_bar(t));
  }
  double snr(int t) const { return alpha_bar(t) / (1.0 - alpha_bar(t)); }
  // sigma = sqrt((1 - alpha_bar) / alpha_bar): the noise level of x_t / sqrt(alpha_bar).
  double sigma(int t) const { return sigma_of(alpha_bar(t)); }

  static double sigma_of(double alpha_bar) {
    return alpha_bar > 0 ? std::sqrt((1.0 - alpha_bar) / alpha_bar) : std::numeric_limits<double>::infinity();
  }
  static double alpha_bar_of_sigma(double sigma) { return 1.0 / (1.0 + sigma * sigma); }

  // ---- continuous time ----------------------------------------------------
  double sigma_at(double t) const {
    HAZE_REQUIRE(t >= 0 && t <= steps() - 1, "Schedule::sigma_at: t = ", t, " outside [0, ", steps() - 1, "]");
    const int i = static_cast<int>(t);
    if (t == i) return sigma(i);  // integer timesteps read the table itself
    const double w = t - i;
    return std::exp((1 - w) * log_sigma_[i] + w * log_sigma_[i + 1]);
  }
  double alpha_bar_at(double t) const { return alpha_bar_of_sigma(sigma_at(t)); }

  double t_at_sigma(double sigma) const {
    HAZE_REQUIRE(sigma >= this->sigma(0) && sigma <= this->sigma(steps() - 1), "Schedule::t_at_sigma: sigma = ",
                 sigma, " outside the schedule's [", this->sigma(0), ", ", this->sigma(steps() - 1), "]");
    const double ls = std::log(sigma);
    const auto upper = std::upper_bound(log_sigma_.begin(), log_sigma_.end(), ls);
    if (upper == log_sigma_.end()) return steps() - 1;
    const int i = static_cast<int>(upper - log_sigma_.begin()) - 1;
    return i + (ls - log_sigma_[i]) / (log_sigma_[i + 1] - log_sigma_[i]);
  }

  void require_timestep(int t, const char* op) const {
    HAZE_REQUIRE(t >= 0 && t < steps(), op, ": timestep t = ", t, " outside [0, ", steps(), ") for ",
                 description());
  }

 protected:
  Schedule(std::string kind, std::vector<double> parameters, bool zero_terminal_snr, std::vector<double> betas)
      : kind_(std::move(kind)),
        parameters_(std::move(parameters)),
        zero_terminal_snr_(zero_terminal_snr),
        beta_(std::move(betas)) {
    HAZE_REQUIRE(!beta_.empty(), "Schedule: no betas");
    alpha_bar_.resize(beta_.size());
    posterior_variance_.resize(beta_.size());
    log_sigma_.resize(beta_.size());
    double ab = 1;
    for (size_t t = 0; t < beta_.size(); ++t) {
      const double b = beta_[t];
      const bool last = t + 1 == beta_.size();
      HAZE_REQUIRE(b > 0 && (b < 1 || (last && b == 1)), "Schedule ", kind_, ": beta at t = ", t, " is ", b,
                   "; betas must lie in (0, 1), with 1 allowed only at the last step");
      const double ab_prev = ab;
      ab *= 1 - b;
      alpha_bar_[t] = ab;
      posterior_variance_[t] = b * (1 - ab_prev) / (1 - ab);
      log_sigma_[t] = std::log(sigma_of(ab));
    }
  }

 private:
  int index(int t) const {
    HAZE_REQUIRE(t >= 0 && t < steps(), "Schedule: timestep t = ", t, " outside [0, ", steps(), ")");
    return t;
  }

  std::string kind_;
  std::vector<double> parameters_;
  bool zero_terminal_snr_ = false;
  std::vector<double> beta_, alpha_bar_, posterior_variance_, log_sigma_;
};

// The tables for a compile-time policy: NoiseSchedule<schedule::Cosine<>> s;
template <class Policy>
  requires schedule::BetaPolicy<Policy>
class NoiseSchedule : public Schedule {
 public:
  NoiseSchedule()
      : Schedule(std::string(Policy::kind), Policy::parameters(), schedule::is_zero_terminal_snr<Policy>(),
                 Policy::betas()) {}
};

}  // namespace haze
