#pragma once
// Learning rate by optimizer step: a linear warm-up from 0 to `peak` over
// `warmup_steps`, then either constant or a cosine decay to
// `peak * final_ratio` at `total_steps` (held there afterwards).

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string_view>

#include "haze/core/error.hpp"

namespace haze::train {

struct LrSchedule {
  enum class Decay { Constant, Cosine };

  double peak = 1e-3;
  int64_t warmup_steps = 0;
  Decay decay = Decay::Constant;
  int64_t total_steps = 0;  // where the cosine ends; unused when Constant
  double final_ratio = 0.0;

  static Decay decay_by_name(std::string_view name) {
    if (name == "constant") return Decay::Constant;
    if (name == "cosine") return Decay::Cosine;
    HAZE_FAIL("LrSchedule: unknown decay '", name, "' (known: constant, cosine)");
  }

  void validate() const {
    HAZE_REQUIRE(peak > 0 && std::isfinite(peak), "LrSchedule: peak learning rate must be finite and > 0, got ", peak);
    HAZE_REQUIRE(warmup_steps >= 0, "LrSchedule: warmup_steps must be >= 0, got ", warmup_steps);
    HAZE_REQUIRE(final_ratio >= 0 && final_ratio <= 1, "LrSchedule: final_ratio must be in [0, 1], got ", final_ratio);
    HAZE_REQUIRE(decay == Decay::Constant || total_steps > warmup_steps, "LrSchedule: cosine decay needs total_steps (",
                 total_steps, ") > warmup_steps (", warmup_steps, ")");
  }

  // The rate for optimizer step `step` (1-based: the first update is step 1).
  double at(int64_t step) const {
    if (step <= warmup_steps) return peak * double(step) / double(std::max<int64_t>(warmup_steps, 1));
    if (decay == Decay::Constant) return peak;
    const double progress = std::min(1.0, double(step - warmup_steps) / double(total_steps - warmup_steps));
    return peak * (final_ratio + (1 - final_ratio) * 0.5 * (1 + std::cos(std::numbers::pi * progress)));
  }
};

}  // namespace haze::train
