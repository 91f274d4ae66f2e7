#pragma once
// ForwardProcess<T, B, Policy>: the forward Markov chain q on a backend.
//   step(x_prev, t, eps)       one transition  x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps
//   marginal(x0, ts, eps)      closed form     x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, one t per sample
//   posterior_mean(x0, xt, t)  mean of q(x_{t-1} | x_t, x0); posterior_variance(t) its variance
// Policy is a compile-time schedule (schedule.hpp); with the default,
// schedule::Runtime, the schedule is passed to the constructor.

#include <span>
#include <vector>

#include "haze/core/tensor.hpp"
#include "haze/diffusion/noise_schedule.hpp"
#include "haze/ops/combine.hpp"

namespace haze {

namespace schedule {
struct Runtime {};  // the schedule is chosen at run time
}  // namespace schedule

template <Real T, Backend B, class Policy = schedule::Runtime>
class ForwardProcess {
 public:
  ForwardProcess()
    requires schedule::BetaPolicy<Policy>
      : schedule_(NoiseSchedule<Policy>{}) {}
  explicit ForwardProcess(Schedule schedule) : schedule_(std::move(schedule)) {}

  const Schedule& schedule() const { return schedule_; }

  void step(const Tensor<T, B>& x_prev, int t, const Tensor<T, B>& eps, Tensor<T, B>& x_t) const {
    schedule_.require_timestep(t, "ForwardProcess::step");
    ops::lincomb(x_t, std::sqrt(schedule_.alpha(t)), x_prev, std::sqrt(schedule_.beta(t)), eps);
  }
  Tensor<T, B> step(const Tensor<T, B>& x_prev, int t, const Tensor<T, B>& eps) const {
    Tensor<T, B> x_t(x_prev.shape());
    step(x_prev, t, eps, x_t);
    return x_t;
  }

  // ts holds one timestep per sample (x0.dim(0) of them).
  void marginal(const Tensor<T, B>& x0, std::span<const int> ts, const Tensor<T, B>& eps, Tensor<T, B>& x_t) const {
    x0.require_nonempty("ForwardProcess::marginal");
    HAZE_REQUIRE(static_cast<int64_t>(ts.size()) == x0.dim(0), "ForwardProcess::marginal: ", ts.size(),
                 " timesteps for a batch of ", x0.dim(0), " (x0 is ", x0.shape(), ")");
    std::vector<double> a(ts.size()), b(ts.size());
    for (size_t n = 0; n < ts.size(); ++n) {
      schedule_.require_timestep(ts[n], "ForwardProcess::marginal");
      a[n] = schedule_.sqrt_alpha_bar(ts[n]);
      b[n] = schedule_.sqrt_one_minus_alpha_bar(ts[n]);
    }
    ops::lincomb_per_sample(x_t, a, x0, b, eps);
  }
  Tensor<T, B> marginal(const Tensor<T, B>& x0, std::span<const int> ts, const Tensor<T, B>& eps) const {
    Tensor<T, B> x_t(x0.shape());
    marginal(x0, ts, eps, x_t);
    return x_t;
  }

  Tensor<T, B> posterior_mean(const Tensor<T, B>& x0, const Tensor<T, B>& x_t, int t) const {
    schedule_.require_timestep(t, "ForwardProcess::posterior_mean");
    Tensor<T, B> mean(x0.shape());
    ops::lincomb(mean, schedule_.posterior_mean_coef_x0(t), x0, schedule_.posterior_mean_coef_xt(t), x_t);
    return mean;
  }
  double posterior_variance(int t) const {
    schedule_.require_timestep(t, "ForwardProcess::posterior_variance");
    return schedule_.posterior_variance(t);
  }

 private:
  Schedule schedule_;
};

}  // namespace haze
