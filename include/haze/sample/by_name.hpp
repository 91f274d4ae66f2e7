#pragma once
// Samplers and parameterizations chosen by name at run time, for command
// lines and checkpoints:
//   run_sampler<P>("dpmpp2m", schedule, steps, denoiser, x_T, gen)
//   with_prediction("velocity", [&]<class P>(P) { ... })
// Names: ddpm, ddim, euler, euler_a, heun, dpmpp2m, sde; epsilon, sample,
// velocity. By default the sigma-space samplers use Karras spacing unless
// the schedule's largest sigma is huge (default_karras), the rest leading
// spacing (SamplerSettings changes both); steps = 0 means every training
// timestep where a sampler allows it.

#include <array>
#include <optional>
#include <string_view>

#include "haze/core/error.hpp"
#include "haze/diffusion/parameterization.hpp"
#include "haze/sample/ddim.hpp"
#include "haze/sample/ddpm.hpp"
#include "haze/sample/dpm_solver.hpp"
#include "haze/sample/euler.hpp"
#include "haze/sample/heun.hpp"
#include "haze/sample/sde.hpp"

namespace haze::sample {

inline constexpr std::array<std::string_view, 7> sampler_names = {"ddpm", "ddim", "euler", "euler_a",
                                                                  "heun", "dpmpp2m", "sde"};

// What run_sampler passes on to the sampler it picks (each takes the
// fields that apply to it). The defaults are haze's command-line defaults;
// a diffusers scheduler config gives its own (io::DiffusersScheduler).
struct SamplerSettings {
  int steps = 25;        // 0: every training timestep, where the sampler allows it
  bool clip_x0 = false;  // clamp each step's x0 estimate to [-1, 1] (image data; the SDE has no such step)
  Spacing spacing = Spacing::Leading;  // of the timesteps (and of the sigmas when karras is false)
  int steps_offset = 0;                // added to a Leading grid (diffusers' steps_offset)
  std::optional<bool> karras = {};     // Karras sigmas for euler, euler_a, heun and dpmpp2m; unset: default_karras
  Variance variance = Variance::FixedSmall;  // ddpm's
  bool eps_from_clipped_x0 = true;     // ddim's (false: diffusers' use_clipped_model_output default)
  bool set_alpha_to_one = true;        // ddim's final alpha_bar: 1, or (false) alpha_bar(0)
  bool previous_by_stride = false;     // ddpm's and ddim's previous timestep: t - T / N (diffusers), not the next entry
  Progress progress = {};
};

// Whether the sigma-space samplers take Karras sigmas when nothing says:
// yes unless the schedule's largest sigma is huge. A cosine schedule's is
// about 2e4, and rho = 7 then spends its first steps far above where the
// data is decided: on an exact-score N(0.3, 0.5^2) denoiser, 25 Karras steps
// of Euler missed the variance by 45% and of Heun by 40%, against 12% and
// 0.2% on the leading timesteps (tests/diffusion/test_samplers.cpp). The
// linear schedule's largest sigma is about 160, and Karras helps DPM-Solver++
// there (5.5% against 35% at 25 steps).
inline bool default_karras(const Schedule& schedule) { return schedule.sigma(schedule.steps() - 1) <= 1e3; }

template <Prediction P, Real T, Backend B, Denoiser<T, B> D>
Tensor<T, B> run_sampler(std::string_view name, const Schedule& schedule, const SamplerSettings& s, D&& denoiser,
                         Tensor<T, B> x, Generator& gen) {
  const SigmaOptions sigma{.steps = s.steps,
                           .spacing = s.spacing,
                           .steps_offset = s.steps_offset,
                           .karras = s.karras.value_or(default_karras(schedule)),
                           .clip_x0 = s.clip_x0,
                           .progress = s.progress};
  if (name == "ddpm")
    return Ddpm<P>(schedule, {.steps = s.steps,
                              .spacing = s.spacing,
                              .steps_offset = s.steps_offset,
                              .variance = s.variance,
                              .clip_x0 = s.clip_x0,
                              .previous_by_stride = s.previous_by_stride,
                              .progress = s.progress})
        .run(denoiser, std::move(x), gen);
  if (name == "ddim")
    return Ddim<P>(schedule, {.steps = s.steps,
                              .spacing = s.spacing,
                              .steps_offset = s.steps_offset,
                              .clip_x0 = s.clip_x0,
                              .eps_from_clipped_x0 = s.eps_from_clipped_x0,
                              .set_alpha_to_one = s.set_alpha_to_one,
                              .previous_by_stride = s.previous_by_stride,
                              .progress = s.progress})
        .run(denoiser, std::move(x), gen);
  if (name == "sde")
    return ReverseSde<P>(schedule,
                         {.steps = s.steps, .spacing = s.spacing, .steps_offset = s.steps_offset, .progress = s.progress})
        .run(denoiser, std::move(x), gen);
  if (name == "euler") return Euler<P>(schedule, sigma).run(denoiser, std::move(x), gen);
  if (name == "euler_a") return EulerAncestral<P>(schedule, sigma).run(denoiser, std::move(x), gen);
  if (name == "heun") return Heun<P>(schedule, sigma).run(denoiser, std::move(x), gen);
  if (name == "dpmpp2m") return DpmSolverPP2M<P>(schedule, sigma).run(denoiser, std::move(x), gen);
  HAZE_FAIL("unknown sampler '", name, "' (known: ddpm, ddim, euler, euler_a, heun, dpmpp2m, sde)");
}

// With haze's defaults: leading timesteps, Karras sigmas where default_karras says.
template <Prediction P, Real T, Backend B, Denoiser<T, B> D>
Tensor<T, B> run_sampler(std::string_view name, const Schedule& schedule, int steps, D&& denoiser, Tensor<T, B> x,
                         Generator& gen, bool clip_x0 = false, Progress progress = {}) {
  return run_sampler<P>(name, schedule, SamplerSettings{.steps = steps, .clip_x0 = clip_x0, .progress = progress},
                        std::forward<D>(denoiser), std::move(x), gen);
}

// Calls f(P{}) with the parameterization named `name`.
template <class F>
decltype(auto) with_prediction(std::string_view name, F&& f) {
  if (name == predict::Epsilon::name) return f(predict::Epsilon{});
  if (name == predict::Sample::name) return f(predict::Sample{});
  if (name == predict::Velocity::name) return f(predict::Velocity{});
  HAZE_FAIL("unknown prediction type '", name, "' (known: epsilon, sample, velocity)");
}

}  // namespace haze::sample
