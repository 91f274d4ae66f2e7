#pragma once
// DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), multistep second order in
// the data prediction, written in sigma space with lambda = -log sigma:
//   h = lambda' - lambda,  x~' = (s'/s) x~ - expm1(-h) D~,
//   D~ = D                                     on the first step and the last (s' = 0),
//   D~ = (1 + 1/(2r)) D - 1/(2r) D_prev         otherwise, r = h_prev / h.
// The last step is first order, as in the paper's "lower order final".

#include <cmath>

#include "haze/core/generator.hpp"
#include "haze/sample/sigmas.hpp"

namespace haze::sample {

template <Prediction P = predict::Epsilon>
class DpmSolverPP2M : public SigmaSampler {
 public:

  DpmSolverPP2M(Schedule schedule, Options options) : SigmaSampler(std::move(schedule), std::move(options), "DpmSolverPP2M") {}

  template <Real T, Backend B, Denoiser<T, B> D>
  Tensor<T, B> run(D&& denoiser, Tensor<T, B> x, Generator&) const {
    detail::require_start(x, "DpmSolverPP2M");
    const auto& s = grid_.sigmas;
    const int total = static_cast<int>(grid_.ts.size());
    detail::OutputChecks<T, B> checks("DpmSolverPP2M", total);
    Tensor<T, B> x0(x.shape()), x0_prev(x.shape()), scratch(x.shape());
    detail::to_sigma_space(x, s[0]);
    for (int i = 0; i < total; ++i) {
      detail::denoised<P>(denoiser, x, s[i], grid_.ts[i], scratch, x0, checks, i, total, options_.clip_x0);
      if (s[i + 1] == 0) {
        ops::copy(x0, x);
      } else {
        const double h = std::log(s[i] / s[i + 1]);
        const double ratio = s[i + 1] / s[i], phi = -std::expm1(-h);
        if (i == 0) {
          ops::lincomb(x, ratio, x, phi, x0);
        } else {
          const double r = std::log(s[i - 1] / s[i]) / h;
          ops::lincomb(x, ratio, x, phi * (1 + 1 / (2 * r)), x0, -phi / (2 * r), x0_prev);
        }
      }
      std::swap(x0, x0_prev);
      detail::report(options_.progress, i + 1, total);
    }
    checks.finish();
    return x;
  }
};

}  // namespace haze::sample
