#pragma once
// Samplers and parameterizations chosen by name at run time, for command
// lines and checkpoints:
//   run_sampler<P>("dpmpp2m", schedule, steps, denoiser, x_T, gen)
//   with_prediction("velocity", [&]<class P>(P) { ... })
// Names: ddpm, ddim, euler, euler_a, heun, dpmpp2m, sde; epsilon, sample,
// velocity. The sigma-space samplers use Karras spacing, the rest leading
// spacing; steps = 0 means every training timestep where a sampler allows it.

#include <array>
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

// clip_x0: clamp each step's x0 estimate to [-1, 1] (for image data; the SDE has no such step).
template <Prediction P, Real T, Backend B, Denoiser<T, B> D>
Tensor<T, B> run_sampler(std::string_view name, const Schedule& schedule, int steps, D&& denoiser, Tensor<T, B> x,
                         Generator& gen, bool clip_x0 = false, Progress progress = {}) {
  const SigmaOptions sigma{.steps = steps, .karras = true, .clip_x0 = clip_x0, .progress = progress};
  if (name == "ddpm")
    return Ddpm<P>(schedule, {.steps = steps, .clip_x0 = clip_x0, .progress = progress}).run(denoiser, std::move(x), gen);
  if (name == "ddim")
    return Ddim<P>(schedule, {.steps = steps, .clip_x0 = clip_x0, .progress = progress}).run(denoiser, std::move(x), gen);
  if (name == "sde") return ReverseSde<P>(schedule, {.steps = steps, .progress = progress}).run(denoiser, std::move(x), gen);
  if (name == "euler") return Euler<P>(schedule, sigma).run(denoiser, std::move(x), gen);
  if (name == "euler_a") return EulerAncestral<P>(schedule, sigma).run(denoiser, std::move(x), gen);
  if (name == "heun") return Heun<P>(schedule, sigma).run(denoiser, std::move(x), gen);
  if (name == "dpmpp2m") return DpmSolverPP2M<P>(schedule, sigma).run(denoiser, std::move(x), gen);
  HAZE_FAIL("unknown sampler '", name, "' (known: ddpm, ddim, euler, euler_a, heun, dpmpp2m, sde)");
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
