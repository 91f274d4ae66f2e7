#pragma once
// Which training timesteps a sampler visits when it takes N < T steps, as
// defined in DDIM (Song et al. 2021) and tabulated by Lin et al. 2024
// ("Common diffusion noise schedules and sample steps are flawed", Table 2):
//   Linspace: round(linspace(0, T - 1, N))          reversed
//   Leading:  (T / N) * [0, 1, ..., N - 1]          reversed (integer T / N)
//   Trailing: round(arange(T, 0, -T / N)) - 1        starts at T - 1
// The result runs from noisy to clean. A sampler's "previous" timestep is the
// next entry of this array, and -1 (clean data, alpha_bar = 1) after the last
// one; never t - T / N, which is wrong for Linspace and Trailing.

#include <cmath>
#include <string_view>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/diffusion/noise_schedule.hpp"

namespace haze::sample {

enum class Spacing { Leading, Trailing, Linspace };

inline Spacing spacing_from_name(std::string_view name) {
  if (name == "leading") return Spacing::Leading;
  if (name == "trailing") return Spacing::Trailing;
  if (name == "linspace") return Spacing::Linspace;
  HAZE_FAIL("timestep spacing '", name, "' is unknown (known: leading, trailing, linspace)");
}

inline std::vector<int> timesteps(int train_steps, int steps, Spacing spacing) {
  HAZE_REQUIRE(steps >= 1 && steps <= train_steps, "timesteps: need 1 <= steps <= ", train_steps,
               " (the schedule's length), got ", steps);
  std::vector<int> ts(static_cast<size_t>(steps));
  // std::nearbyint rounds halves to even, as numpy.round does.
  switch (spacing) {
    case Spacing::Linspace: {
      const double step = steps > 1 ? double(train_steps - 1) / (steps - 1) : 0.0;
      for (int i = 0; i < steps; ++i) ts[steps - 1 - i] = static_cast<int>(std::nearbyint(i * step));
      if (steps > 1) ts[0] = train_steps - 1;
      break;
    }
    case Spacing::Leading: {
      const int stride = train_steps / steps;
      for (int i = 0; i < steps; ++i) ts[steps - 1 - i] = i * stride;
      break;
    }
    case Spacing::Trailing: {
      const double stride = double(train_steps) / steps;
      for (int i = 0; i < steps; ++i) ts[i] = static_cast<int>(std::nearbyint(train_steps - i * stride)) - 1;
      break;
    }
  }
  return ts;
}

// What Ddpm, Ddim and ReverseSde share: the schedule, their options and the
// timesteps they visit (steps = 0 in the options means all of them).
template <class Options>
class TimestepSampler {
 public:
  const std::vector<int>& timesteps_used() const { return ts_; }

 protected:
  TimestepSampler(Schedule schedule, Options options)
      : schedule_(std::move(schedule)), options_(std::move(options)),
        ts_(timesteps(schedule_.steps(), options_.steps == 0 ? schedule_.steps() : options_.steps, options_.spacing)) {}

  int total() const { return static_cast<int>(ts_.size()); }
  // alpha_bar at the timestep after step i: the next array entry, or 1 (clean data) after the last.
  double alpha_bar_next(int i) const { return i + 1 < total() ? schedule_.alpha_bar(ts_[i + 1]) : 1.0; }

  Schedule schedule_;
  Options options_;
  std::vector<int> ts_;
};

}  // namespace haze::sample
