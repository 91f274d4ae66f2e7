#pragma once
// Data whose denoiser is known in closed form: an isotropic Gaussian mixture
// in d dimensions (one component is the plain Gaussian). For
// x_t = sqrt(ab) x0 + sqrt(1 - ab) eps, component k gives
//   x_t | k ~ N(sqrt(ab) mu_k, v_k I),  v_k = ab s_k^2 + 1 - ab,
//   E[x0 | x_t, k]  = mu_k + sqrt(ab) s_k^2 / v_k (x_t - sqrt(ab) mu_k),
//   E[eps | x_t, k] = sqrt(1 - ab) / v_k (x_t - sqrt(ab) mu_k),
// and the mixture weights them by the posterior responsibilities. Every
// parameterization's target is linear in (x0, eps), so its exact prediction
// is the same combination of these two expectations. Computed on the host in
// double; works for either backend.

#include <haze/diffusion/noise_schedule.hpp>
#include <haze/diffusion/parameterization.hpp>

#include <cmath>
#include <random>
#include <vector>

namespace haze::test {

struct GaussianMixture {
  int dim = 1;
  std::vector<double> weights;             // K, summing to 1
  std::vector<std::vector<double>> means;  // K x dim
  std::vector<double> stds;                // K

  static GaussianMixture gaussian(double mean, double std) { return {1, {1.0}, {{mean}}, {std}}; }

  // n samples, row-major [n, dim].
  std::vector<double> sample(int64_t n, uint64_t seed) const {
    std::mt19937_64 engine(seed);
    std::discrete_distribution<int> pick(weights.begin(), weights.end());
    std::normal_distribution<double> normal;
    std::vector<double> out(static_cast<size_t>(n * dim));
    for (int64_t i = 0; i < n; ++i) {
      const int k = pick(engine);
      for (int j = 0; j < dim; ++j) out[i * dim + j] = means[k][j] + stds[k] * normal(engine);
    }
    return out;
  }

  // E[x0 | x_t] and E[eps | x_t] for one point.
  void posterior(const double* x, double ab, double* x0, double* eps) const {
    const size_t K = weights.size();
    std::vector<double> log_r(K);
    const double sa = std::sqrt(ab), so = std::sqrt(1 - ab);
    double top = -INFINITY;
    for (size_t k = 0; k < K; ++k) {
      const double v = ab * stds[k] * stds[k] + 1 - ab;
      double d2 = 0;
      for (int j = 0; j < dim; ++j) d2 += (x[j] - sa * means[k][j]) * (x[j] - sa * means[k][j]);
      log_r[k] = std::log(weights[k]) - 0.5 * dim * std::log(v) - d2 / (2 * v);
      top = std::max(top, log_r[k]);
    }
    double total = 0;
    for (double& l : log_r) total += (l = std::exp(l - top));
    for (int j = 0; j < dim; ++j) x0[j] = eps[j] = 0;
    for (size_t k = 0; k < K; ++k) {
      const double r = log_r[k] / total, v = ab * stds[k] * stds[k] + 1 - ab;
      for (int j = 0; j < dim; ++j) {
        const double centred = x[j] - sa * means[k][j];
        x0[j] += r * (means[k][j] + sa * stds[k] * stds[k] / v * centred);
        eps[j] += r * so / v * centred;
      }
    }
  }
};

// The noise level a denoiser sees at (possibly fractional) timestep t.
inline double alpha_bar_for(const Schedule& schedule, double t) {
  return t == std::floor(t) ? schedule.alpha_bar(static_cast<int>(t)) : schedule.alpha_bar_at(t);
}

// A denoiser callable returning the exact prediction in parameterization P.
template <Prediction P, class T, class B>
auto exact_denoiser(const GaussianMixture& data, const Schedule& schedule) {
  return [&data, &schedule](const Tensor<T, B>& x_t, double t) {
    const double ab = alpha_bar_for(schedule, t);
    const Coefficients c = P::target(ab);
    const std::vector<T> x = x_t.to_host();
    std::vector<T> out(x.size());
    std::vector<double> point(data.dim), x0(data.dim), eps(data.dim);
    for (size_t i = 0; i < x.size(); i += data.dim) {
      for (int j = 0; j < data.dim; ++j) point[j] = x[i + j];
      data.posterior(point.data(), ab, x0.data(), eps.data());
      for (int j = 0; j < data.dim; ++j) out[i + j] = static_cast<T>(c.first * x0[j] + c.second * eps[j]);
    }
    return Tensor<T, B>::from_host(x_t.shape(), out);
  };
}

}  // namespace haze::test
