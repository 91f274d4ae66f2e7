// The forward process, the parameterizations and the loss on the Cpu backend.
#include <haze/diffusion/forward_process.hpp>
#include <haze/diffusion/loss.hpp>
#include <haze/haze.hpp>

#include <cmath>

#include "test_support.hpp"

using haze::Generator;
using haze::Schedule;
using haze::backend::Cpu;
using haze::test::mentions;
namespace predict = haze::predict;

template <class T>
using Tensor = haze::Tensor<T, Cpu>;

TEST_CASE("T single Markov steps reach the closed-form marginal", "[forward]") {
  // x0 is fixed (two values, half the elements each); after t steps of
  // x_t = sqrt(1 - b) x_{t-1} + sqrt(b) eps every element is exactly
  // N(sqrt(ab_t) x0, 1 - ab_t). Mean and variance over M elements are
  // checked to 5 standard errors: se(mean) = sqrt(var / M),
  // se(var) = var sqrt(2 / M) for a normal.
  const haze::ForwardProcess<double, Cpu, haze::schedule::Cosine<200>> process;
  const Schedule& s = process.schedule();
  constexpr int64_t M = 20000;
  std::vector<double> start(2 * M);
  for (int64_t i = 0; i < 2 * M; ++i) start[i] = i < M ? -0.8 : 1.5;
  auto x = Tensor<double>::from_host({2, M}, start);
  Tensor<double> eps({2, M});
  Generator gen{17};
  for (int t = 0; t < s.steps(); ++t) {
    haze::randn(eps, gen);
    x = process.step(x, t, eps);
    if (t == 9 || t == 99 || t == 199) {
      const std::vector<double> v = x.to_host();
      for (int half = 0; half < 2; ++half) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < M; ++i) mean += v[half * M + i];
        mean /= M;
        for (int64_t i = 0; i < M; ++i) var += (v[half * M + i] - mean) * (v[half * M + i] - mean);
        var /= M - 1;
        const double x0 = start[half * M];
        const double true_var = 1 - s.alpha_bar(t);
        CAPTURE(t, half, mean, var);
        CHECK(std::abs(mean - s.sqrt_alpha_bar(t) * x0) <= 5 * std::sqrt(true_var / M));
        CHECK(std::abs(var - true_var) <= 5 * true_var * std::sqrt(2.0 / M));
      }
    }
  }
}

TEST_CASE("marginal uses each sample's own timestep", "[forward]") {
  const haze::ForwardProcess<double, Cpu> process(Schedule::make("linear", 1000));
  const Schedule& s = process.schedule();
  const std::vector<double> x0v = haze::test::uniform<double>(3 * 4, 1), epsv = haze::test::uniform<double>(3 * 4, 2);
  const auto x0 = Tensor<double>::from_host({3, 4}, x0v), eps = Tensor<double>::from_host({3, 4}, epsv);
  const std::vector<int> ts = {0, 500, 999};
  const auto xt = process.marginal(x0, ts, eps).to_host();
  for (int n = 0; n < 3; ++n)
    for (int i = 0; i < 4; ++i) {
      const double expected = s.sqrt_alpha_bar(ts[n]) * x0v[n * 4 + i] + s.sqrt_one_minus_alpha_bar(ts[n]) * epsv[n * 4 + i];
      CHECK(xt[n * 4 + i] == Approx(expected).epsilon(1e-15));
    }
  // posterior mean: q(x_{t-1} | x_t, x0) has mean c0 x0 + ct x_t.
  const std::vector<int> at500 = {500, 500, 500};
  const auto xt500 = process.marginal(x0, at500, eps);
  const auto mean = process.posterior_mean(x0, xt500, 500).to_host();
  const auto xt500h = xt500.to_host();
  for (int i = 0; i < 12; ++i)
    CHECK(mean[i] == Approx(s.posterior_mean_coef_x0(500) * x0v[i] + s.posterior_mean_coef_xt(500) * xt500h[i]).epsilon(1e-15));
  CHECK(process.posterior_variance(500) == s.posterior_variance(500));

  CHECK_THROWS_WITH(process.marginal(x0, std::vector<int>{0, 1}, eps), mentions("2 timesteps for a batch of 3"));
  CHECK_THROWS_WITH(process.marginal(x0, std::vector<int>{0, 1, 1000}, eps), mentions("timestep t = 1000 outside [0, 1000)"));
  CHECK_THROWS_WITH(process.step(x0, -1, eps), mentions("ForwardProcess::step: timestep t = -1"));
  CHECK_THROWS_WITH(process.posterior_mean(x0, xt500, 1000), mentions("posterior_mean: timestep t = 1000"));
}

template <class P>
static void check_round_trip(double ab) {
  // Build x_t from (x0, eps), the target from the same pair, then recover both.
  const double x0 = 0.7, eps = -1.3;
  const double xt = std::sqrt(ab) * x0 + std::sqrt(1 - ab) * eps;
  const haze::Coefficients t = P::target(ab);
  const double out = t.first * x0 + t.second * eps;
  const haze::Coefficients a = P::x0_from(ab), b = P::eps_from(ab);
  CHECK(a.first * xt + a.second * out == Approx(x0).epsilon(1e-12));
  CHECK(b.first * xt + b.second * out == Approx(eps).epsilon(1e-12));
}

TEST_CASE("each parameterization converts to x0 and eps and back", "[parameterization]") {
  for (double ab : {0.9999, 0.5, 0.01}) {
    check_round_trip<predict::Epsilon>(ab);
    check_round_trip<predict::Sample>(ab);
    check_round_trip<predict::Velocity>(ab);
  }
  // v = sqrt(ab) eps - sqrt(1 - ab) x0 (Salimans & Ho 2022)
  const haze::Coefficients v = predict::Velocity::target(0.36);
  CHECK(v.first == Approx(-0.8));
  CHECK(v.second == Approx(0.6));
}

TEST_CASE("mse_loss value and gradient, checked by central differences", "[loss]") {
  const std::vector<double> w = {0.5, 2.0};
  auto pred = Tensor<double>::from_host({2, 3}, haze::test::uniform<double>(6, 3));
  const auto target = Tensor<double>::from_host({2, 3}, haze::test::uniform<double>(6, 4));
  Tensor<double> grad({2, 3});
  const double loss = haze::mse_loss(pred, target, w, grad);
  const auto p = pred.to_host(), y = target.to_host(), g = grad.to_host();
  double expected = 0;
  for (int i = 0; i < 6; ++i) expected += w[i / 3] * (p[i] - y[i]) * (p[i] - y[i]);
  CHECK(loss == Approx(expected / 6).epsilon(1e-14));
  // Central differences: the loss is quadratic, so the O(h^2) truncation
  // term vanishes and only rounding (~1e-16 / h) remains.
  const double h = 1e-5;
  for (int i = 0; i < 6; ++i) {
    std::vector<double> plus = p, minus = p;
    plus[i] += h;
    minus[i] -= h;
    Tensor<double> scratch({2, 3});
    const double lp = haze::mse_loss(Tensor<double>::from_host({2, 3}, plus), target, w, scratch);
    const double lm = haze::mse_loss(Tensor<double>::from_host({2, 3}, minus), target, w, scratch);
    const double fd = (lp - lm) / (2 * h);
    CHECK(std::abs(fd - g[i]) <= 1e-6 * std::max(1.0, std::abs(g[i])));
  }
  Tensor<double> unweighted({2, 3});
  CHECK(haze::mse_loss(pred, target, {}, unweighted) > 0);
  CHECK_THROWS_WITH(haze::mse_loss(pred, target, std::vector<double>{1.0}, grad), mentions("1 weights for a batch of 2"));
  Tensor<double> wrong({3, 2});
  CHECK_THROWS_WITH(haze::mse_loss(pred, wrong, {}, grad), mentions("mse_loss: shape mismatch: prediction is [2, 3] but target is [3, 2]"));
}

template <class P>
static double weighted_error(const Schedule& s, int t, double gamma, double x0, double eps, double x0_hat) {
  // A model whose x0 estimate is x0_hat, expressed in parameterization P.
  const double ab = s.alpha_bar(t);
  const double xt = std::sqrt(ab) * x0 + std::sqrt(1 - ab) * eps;
  const double eps_hat = (xt - std::sqrt(ab) * x0_hat) / std::sqrt(1 - ab);
  const haze::Coefficients c = P::target(ab);
  const double diff = (c.first * x0 + c.second * eps) - (c.first * x0_hat + c.second * eps_hat);
  const std::vector<int> ts = {t};
  return haze::min_snr_weights<P>(s, ts, gamma)[0] * diff * diff;
}

TEST_CASE("Min-SNR-gamma weights give min(snr, gamma) ||x0 - x0_hat||^2 in every parameterization",
          "[loss][min-snr]") {
  const Schedule s = Schedule::make("linear", 1000);
  const double gamma = 5, x0 = 0.4, eps = 0.9, x0_hat = -0.1;
  for (int t : {0, 10, 100, 500, 999}) {
    CAPTURE(t, s.snr(t));
    const double expected = std::min(s.snr(t), gamma) * (x0 - x0_hat) * (x0 - x0_hat);
    CHECK(weighted_error<predict::Epsilon>(s, t, gamma, x0, eps, x0_hat) == Approx(expected).epsilon(1e-9));
    CHECK(weighted_error<predict::Sample>(s, t, gamma, x0, eps, x0_hat) == Approx(expected).epsilon(1e-9));
    CHECK(weighted_error<predict::Velocity>(s, t, gamma, x0, eps, x0_hat) == Approx(expected).epsilon(1e-9));
  }
  CHECK_THROWS_WITH(haze::min_snr_weights<predict::Epsilon>(s, std::vector<int>{0}, 0.0), mentions("gamma must be > 0"));
  // At zero terminal SNR the epsilon weight's limit is 1, not 0/0.
  const Schedule z = Schedule::make("linear", 1000, {}, true);
  CHECK(haze::min_snr_weights<predict::Epsilon>(z, std::vector<int>{999}, gamma)[0] == 1.0);
}
