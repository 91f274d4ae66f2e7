#pragma once
// What every sampler shares: the denoiser contract, the checks on what it
// returns, and the conversion of its output to (x0, eps).
//
// A denoiser is any callable  Tensor<T, B> (const Tensor<T, B>& x_t, double t)
// returning the model output for x_t at timestep t in the sampler's
// parameterization (predict::Epsilon, Sample or Velocity). t may be
// fractional for sigma-space samplers with Karras sigmas; the schedule's
// alpha_bar_at(t) gives the matching noise level.

#include <algorithm>
#include <cmath>
#include <concepts>
#include <functional>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/core/tensor.hpp"
#include "haze/diffusion/noise_schedule.hpp"
#include "haze/diffusion/parameterization.hpp"
#include "haze/ops/combine.hpp"
#include "haze/ops/reduce.hpp"

namespace haze::sample {

// Called after each step with (steps done, total steps).
using Progress = std::function<void(int, int)>;

template <class D, class T, class B>
concept Denoiser = std::invocable<D&, const Tensor<T, B>&, double> &&
                   std::same_as<std::invoke_result_t<D&, const Tensor<T, B>&, double>, Tensor<T, B>>;

namespace detail {

// The checks on what a denoiser returns. Its shape is checked at once (on
// the host); its finiteness on the backend: each evaluation's count of
// NaN and infinite values lands in its own slot of a backend buffer that
// finish() reads back once, when the loop ends, so that no sampler step
// waits for the device. A bad output is reported by its step and timestep
// (the first, if several); the steps after it ran on its NaNs.
template <class T, class B>
class OutputChecks {
 public:
  // `evaluations`: how many denoiser calls the run makes at most.
  OutputChecks(const char* sampler, int evaluations)
      : sampler_(sampler), counts_(Tensor<double, B>::zeros({std::max(evaluations, 1)})) {}

  template <class D>
  Tensor<T, B> evaluate(D& denoiser, const Tensor<T, B>& x, double t, int step, int total) {
    HAZE_REQUIRE(calls_.size() < size_t(counts_.numel()), sampler_, ": more denoiser calls than the ",
                 counts_.numel(), " the checks were sized for");
    Tensor<T, B> out = denoiser(x, t);
    HAZE_REQUIRE(!out.empty() && out.shape() == x.shape(), sampler_, ": the denoiser returned shape ", out.shape(),
                 " for input ", x.shape(), " at step ", step + 1, " of ", total, " (t = ", t, ")");
    B::sum_axes(out.data(), 1, 1, out.numel(), ops::NonFinite{}, 0.0, counts_.data() + calls_.size());
    calls_.push_back({step, total, t});
    return out;
  }

  // Throws if any output was not finite (one read back).
  void finish() const {
    if (calls_.empty()) return;
    const std::vector<double> counts = counts_.to_host();
    for (size_t i = 0; i < calls_.size(); ++i)
      HAZE_REQUIRE(counts[i] == 0, sampler_, ": the denoiser returned ", int64_t(counts[i]),
                   " non-finite values at step ", calls_[i].step + 1, " of ", calls_[i].total, " (t = ", calls_[i].t,
                   ")");
  }

 private:
  struct Call {
    int step, total;
    double t;
  };
  const char* sampler_;
  Tensor<double, B> counts_;
  std::vector<Call> calls_;
};

// x0 (and eps, when asked) from the model output at noise level ab.
template <Prediction P, class T, class B>
void split_prediction(const Tensor<T, B>& x_t, const Tensor<T, B>& out, double ab, Tensor<T, B>& x0,
                      Tensor<T, B>* eps = nullptr) {
  const Coefficients c = P::x0_from(ab);
  ops::lincomb(x0, c.first, x_t, c.second, out);
  if (eps) {
    const Coefficients e = P::eps_from(ab);
    ops::lincomb(*eps, e.first, x_t, e.second, out);
  }
}

struct ClampUnit {
  template <class T>
  HAZE_HD T operator()(T v) const { return v < T(-1) ? T(-1) : (v > T(1) ? T(1) : v); }
};

// An epsilon prediction carries no information about x0 where alpha_bar = 0.
template <Prediction P>
void require_x0_defined(const Schedule& schedule, int t, const char* sampler) {
  HAZE_REQUIRE(!(std::is_same_v<P, predict::Epsilon> && schedule.alpha_bar(t) == 0), sampler,
               ": alpha_bar(t = ", t, ") is 0 (zero terminal SNR), where an epsilon prediction cannot give x0; ",
               "use predict::Velocity or predict::Sample with this schedule");
}

inline void report(const Progress& progress, int done, int total) {
  if (progress) progress(done, total);
}

template <class T, class B>
void require_start(const Tensor<T, B>& x, const char* sampler) {
  HAZE_REQUIRE(!x.empty(), sampler, ": the starting noise x_T is empty");
  HAZE_REQUIRE(x.rank() >= 2, sampler, ": x_T must be batched [N, ...], got ", x.shape());
}

}  // namespace detail
}  // namespace haze::sample
