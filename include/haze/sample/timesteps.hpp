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

#include <algorithm>
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

// `offset` (diffusers' steps_offset) is added to a Leading grid only, as
// diffusers does; every timestep must stay below train_steps.
inline std::vector<int> timesteps(int train_steps, int steps, Spacing spacing, int offset = 0) {
  HAZE_REQUIRE(steps >= 1 && steps <= train_steps, "timesteps: need 1 <= steps <= ", train_steps,
               " (the schedule's length), got ", steps);
  HAZE_REQUIRE(offset >= 0, "timesteps: steps_offset must be >= 0, got ", offset);
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
      HAZE_REQUIRE((steps - 1) * stride + offset < train_steps, "timesteps: steps_offset ", offset, " moves the first of ",
                   steps, " leading timesteps to ", (steps - 1) * stride + offset, ", past the schedule's last, ",
                   train_steps - 1);
      for (int i = 0; i < steps; ++i) ts[steps - 1 - i] = i * stride + offset;
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

// A timestep grid given explicitly (diffusers' set_timesteps(timesteps=...)):
// strictly decreasing, within [0, train_steps).
inline const std::vector<int>& checked_timesteps(const std::vector<int>& ts, int train_steps, const char* who) {
  for (size_t i = 0; i < ts.size(); ++i) {
    HAZE_REQUIRE(ts[i] >= 0 && ts[i] < train_steps, who, ": timesteps[", i, "] = ", ts[i], " is outside [0, ",
                 train_steps, ")");
    HAZE_REQUIRE(i == 0 || ts[i] < ts[i - 1], who, ": timesteps must decrease, but timesteps[", i, "] = ", ts[i],
                 " follows ", ts[i - 1]);
  }
  return ts;
}

// What Ddpm, Ddim and ReverseSde share: the schedule, their options and the
// timesteps they visit: options.timesteps when given, else options.steps of
// options.spacing (steps = 0 means all of them) shifted by steps_offset.
template <class Options>
class TimestepSampler {
 public:
  const std::vector<int>& timesteps_used() const { return ts_; }

 protected:
  TimestepSampler(Schedule schedule, Options options)
      : schedule_(std::move(schedule)), options_(std::move(options)),
        ts_(!options_.timesteps.empty()
                ? checked_timesteps(options_.timesteps, schedule_.steps(), "sampler")
                : timesteps(schedule_.steps(), options_.steps == 0 ? schedule_.steps() : options_.steps,
                            options_.spacing, options_.steps_offset)) {}

  int total() const { return static_cast<int>(ts_.size()); }
  // The timestep after step i: the next array entry, or -1 (clean data)
  // after the last. With `by_stride` (diffusers' DDPM and DDIM schedulers):
  // t - T / N in integers, below 0 meaning clean data, which differs from
  // the next entry where N does not divide T under trailing or linspace.
  int previous_t(int i, bool by_stride = false) const {
    if (by_stride) return std::max(ts_[i] - schedule_.steps() / total(), -1);
    return i + 1 < total() ? ts_[i + 1] : -1;
  }
  // alpha_bar there: 1 (clean data) at -1, or `final` where a sampler says so.
  double alpha_bar_next(int i, bool by_stride = false, double final = 1.0) const {
    const int t = previous_t(i, by_stride);
    return t >= 0 ? schedule_.alpha_bar(t) : final;
  }

  Schedule schedule_;
  Options options_;
  std::vector<int> ts_;
};

}  // namespace haze::sample
