#pragma once
// The denoising loss: a per-sample weighted mean squared error
//   L = (1 / numel) sum_n w_n sum_i (pred[n, i] - target[n, i])^2
// returned with dL/dpred = 2 w_n (pred - target) / numel, the gradient the
// network's backward pass starts from. Weights default to 1; min_snr_weights
// gives the Min-SNR-gamma weighting (Hang et al. 2023) for a parameterization.

#include <span>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/core/macros.hpp"
#include "haze/core/tensor.hpp"
#include "haze/diffusion/noise_schedule.hpp"
#include "haze/diffusion/parameterization.hpp"
#include "haze/ops/combine.hpp"
#include "haze/ops/reduce.hpp"

namespace haze {

namespace detail {
struct SquaredError {
  template <class T>
  HAZE_HD Accumulator operator()(T v, int64_t) const {
    return Accumulator(v) * Accumulator(v);
  }
};

// *loss = sum_n w[n] sums[n] / numel, in double.
template <class T>
struct WeightedMean {
  const T* sums;
  const double* w;
  int64_t batch;
  double numel;
  double* loss;
  HAZE_HD void operator()(int64_t) const {
    double total = 0;
    for (int64_t n = 0; n < batch; ++n) total += w[n] * double(sums[n]);
    *loss = total / numel;
  }
};
}  // namespace detail

// The loss left in backend memory: *loss (a double there) receives L, and
// nothing is read back (the Trainer reads its step's values once).
// weights: one per sample, or empty for all ones. grad gets pred's shape.
template <Real T, Backend B>
void mse_loss_to(const Tensor<T, B>& pred, const Tensor<T, B>& target, std::span<const double> weights,
                 Tensor<T, B>& grad, double* loss) {
  ops::detail::require_same_shape("mse_loss", "prediction", pred, "target", target);
  ops::detail::require_same_shape("mse_loss", "prediction", pred, "gradient", grad);
  const int64_t batch = pred.dim(0), numel = pred.numel();
  HAZE_REQUIRE(weights.empty() || static_cast<int64_t>(weights.size()) == batch, "mse_loss: ", weights.size(),
               " weights for a batch of ", batch);
  std::vector<double> w(weights.begin(), weights.end());
  if (w.empty()) w.assign(static_cast<size_t>(batch), 1.0);

  ops::sub(pred, target, grad);  // grad holds the residual for now
  Tensor<T, B> per_sample({batch});
  ops::sum_axes(grad, 1, batch, numel / batch, per_sample, detail::SquaredError{});
  const auto device_w = Tensor<double, B>::from_host({batch}, w);
  B::for_each_index(1, detail::WeightedMean<T>{per_sample.data(), device_w.data(), batch, double(numel), loss});

  std::vector<double> scale(w.size());
  for (size_t n = 0; n < w.size(); ++n) scale[n] = 2 * w[n] / double(numel);
  const std::vector<double> zero(w.size(), 0.0);
  ops::lincomb_per_sample(grad, scale, grad, zero, grad);
}

// The same, returning L (one read back).
template <Real T, Backend B>
double mse_loss(const Tensor<T, B>& pred, const Tensor<T, B>& target, std::span<const double> weights,
                Tensor<T, B>& grad) {
  Tensor<double, B> loss({1});
  mse_loss_to(pred, target, weights, grad, loss.data());
  return loss.to_host()[0];
}

// Min-SNR-gamma weights for samples at timesteps ts.
template <Prediction P>
std::vector<double> min_snr_weights(const Schedule& schedule, std::span<const int> ts, double gamma) {
  HAZE_REQUIRE(gamma > 0, "min_snr_weights: gamma must be > 0, got ", gamma);
  std::vector<double> w(ts.size());
  for (size_t n = 0; n < ts.size(); ++n) {
    schedule.require_timestep(ts[n], "min_snr_weights");
    w[n] = P::min_snr_weight(schedule.snr(ts[n]), gamma);
  }
  return w;
}

}  // namespace haze
