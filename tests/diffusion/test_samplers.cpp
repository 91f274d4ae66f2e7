// Every sampler driven by exact-score denoisers (exact_score.hpp): no
// training involved, so any error is the sampler's.
#include <haze/haze.hpp>
#include <haze/metrics/sliced_wasserstein.hpp>
#include <haze/sample/ddim.hpp>
#include <haze/sample/ddpm.hpp>
#include <haze/sample/dpm_solver.hpp>
#include <haze/sample/euler.hpp>
#include <haze/sample/guidance.hpp>
#include <haze/sample/heun.hpp>
#include <haze/sample/by_name.hpp>
#include <haze/sample/sde.hpp>

#include <algorithm>
#include <cmath>

#include "diffusion/exact_score.hpp"
#include "test_support.hpp"

using haze::Generator;
using haze::Schedule;
using haze::backend::Cpu;
using haze::test::GaussianMixture;
using haze::test::mentions;
namespace predict = haze::predict;
namespace sample = haze::sample;

using Tensor = haze::Tensor<double, Cpu>;

namespace {

const Schedule& linear_schedule() {
  static const Schedule s = Schedule::make("linear", 1000);
  return s;
}

Tensor noise(haze::Shape shape, uint64_t seed) {
  Tensor x(shape);
  Generator gen{seed};
  haze::randn(x, gen);
  return x;
}

// Runs `sampler` from N(0, I) noise with the exact denoiser in parameterization P.
template <class P, class S>
std::vector<double> draw(const S& sampler, const GaussianMixture& data, int64_t n, uint64_t seed) {
  Generator gen{seed, 1 << 20};  // sampler noise: a stream disjoint from x_T's
  auto denoiser = haze::test::exact_denoiser<P, double, Cpu>(data, linear_schedule());
  return sampler.run(denoiser, noise({n, data.dim}, seed), gen).to_host();
}

struct Moments {
  double mean, var;
};
Moments moments(const std::vector<double>& v) {
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= double(v.size());
  for (double x : v) s += (x - m) * (x - m);
  return {m, s / double(v.size() - 1)};
}

// Two-sample Kolmogorov-Smirnov distance.
double ks_distance(std::vector<double> a, std::vector<double> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  size_t i = 0, j = 0;
  double d = 0;
  while (i < a.size() && j < b.size()) {
    const double x = std::min(a[i], b[j]);
    while (i < a.size() && a[i] <= x) ++i;
    while (j < b.size() && b[j] <= x) ++j;
    d = std::max(d, std::abs(double(i) / a.size() - double(j) / b.size()));
  }
  return d;
}

template <class S>
typename S::Options sigma_options(int steps, bool karras = true) {
  typename S::Options o;
  o.steps = steps;
  o.karras = karras;
  return o;
}

}  // namespace

TEST_CASE("every sampler reproduces a Gaussian's mean and variance", "[sampler][statistics]") {
  // Data N(0.3, 0.5^2), 40000 draws per sampler. Tolerances: 5 standard
  // errors (se(mean) = 0.5/sqrt(n) = 0.0025, se(var) = 0.25 sqrt(2/n) =
  // 0.0018) plus an allowance for the discretisation bias of the step counts
  // used: 0.005 in the variance. The convergence-order test below shows the
  // pathwise error of the first-order samplers is about 3/N for |x_T| <= 2,
  // i.e. ~0.003 at N = 1000, and of the second-order ones about 15/N^2,
  // ~0.0015 at N = 100; either moves the variance by less than 0.005.
  const GaussianMixture data = GaussianMixture::gaussian(0.3, 0.5);
  const Schedule& s = linear_schedule();
  constexpr int64_t n = 40000;
  const double mean_tol = 5 * 0.5 / std::sqrt(double(n)), var_tol = 5 * 0.25 * std::sqrt(2.0 / n) + 0.005;
  const auto check = [&](const char* name, const std::vector<double>& v) {
    const Moments m = moments(v);
    INFO(name << ": mean " << m.mean << ", variance " << m.var);
    CHECK(std::abs(m.mean - 0.3) <= mean_tol);
    CHECK(std::abs(m.var - 0.25) <= var_tol);
  };
  using P = predict::Epsilon;
  check("Ddpm 1000", draw<P>(sample::Ddpm<P>(s, {}), data, n, 1));
  check("Ddpm 1000 fixed_large", draw<P>(sample::Ddpm<P>(s, {.variance = sample::Variance::FixedLarge}), data, n, 2));
  check("Ddim 1000 eta=0", draw<P>(sample::Ddim<P>(s, {.steps = 1000}), data, n, 3));
  check("Ddim 1000 eta=1", draw<P>(sample::Ddim<P>(s, {.steps = 1000, .eta = 1}), data, n, 4));
  check("Euler 1000 karras", draw<P>(sample::Euler<P>(s, sigma_options<sample::Euler<P>>(1000)), data, n, 5));
  check("EulerAncestral 1000 karras",
        draw<P>(sample::EulerAncestral<P>(s, sigma_options<sample::EulerAncestral<P>>(1000)), data, n, 6));
  check("Heun 100 karras", draw<P>(sample::Heun<P>(s, sigma_options<sample::Heun<P>>(100)), data, n, 7));
  check("DpmSolverPP2M 100 karras",
        draw<P>(sample::DpmSolverPP2M<P>(s, sigma_options<sample::DpmSolverPP2M<P>>(100)), data, n, 8));
  check("ReverseSde 1000", draw<P>(sample::ReverseSde<P>(s, {}), data, n, 9));
}

TEST_CASE("samplers reproduce a two-component mixture: weights and shape", "[sampler][statistics]") {
  // 1-D mixture 0.3 N(-1, 0.2^2) + 0.7 N(1, 0.3^2). The fraction of samples
  // above 0 estimates the second weight (the components overlap there by
  // < 1e-3); tolerance 5 se = 5 sqrt(0.21/n) plus that overlap. The KS
  // distance to as many exact draws must stay below 1.95 sqrt(2/n), the
  // two-sample critical value at the 0.1% level.
  const GaussianMixture data{1, {0.3, 0.7}, {{-1.0}, {1.0}}, {0.2, 0.3}};
  const Schedule& s = linear_schedule();
  constexpr int64_t n = 20000;
  const std::vector<double> exact = data.sample(n, 99);
  const auto check = [&](const char* name, const std::vector<double>& v) {
    const double upper = double(std::count_if(v.begin(), v.end(), [](double x) { return x > 0; })) / n;
    const double ks = ks_distance(v, exact);
    INFO(name << ": weight above 0 " << upper << ", KS " << ks);
    CHECK(std::abs(upper - 0.7) <= 5 * std::sqrt(0.21 / n) + 1e-3);
    CHECK(ks <= 1.95 * std::sqrt(2.0 / n));
  };
  using P = predict::Epsilon;
  check("Ddpm 1000", draw<P>(sample::Ddpm<P>(s, {}), data, n, 11));
  check("Ddim 1000", draw<P>(sample::Ddim<P>(s, {.steps = 1000}), data, n, 12));
  check("Euler 1000 karras", draw<P>(sample::Euler<P>(s, sigma_options<sample::Euler<P>>(1000)), data, n, 13));
  check("EulerAncestral 1000 karras",
        draw<P>(sample::EulerAncestral<P>(s, sigma_options<sample::EulerAncestral<P>>(1000)), data, n, 14));
  check("Heun 200 karras", draw<P>(sample::Heun<P>(s, sigma_options<sample::Heun<P>>(200)), data, n, 15));
  check("DpmSolverPP2M 200 karras",
        draw<P>(sample::DpmSolverPP2M<P>(s, sigma_options<sample::DpmSolverPP2M<P>>(200)), data, n, 16));
  check("ReverseSde 1000", draw<P>(sample::ReverseSde<P>(s, {}), data, n, 17));
}

TEST_CASE("a 2-D eight-Gaussian ring: sliced Wasserstein distance near the data floor", "[sampler][statistics]") {
  // Eight components on the unit circle, std 0.1. The sliced Wasserstein-1
  // distance (metrics/sliced_wasserstein.hpp, the same 64 seeded random
  // directions for every comparison) between samples and fresh data must be
  // within 2x the data-vs-data floor: the floor is what a perfect sampler
  // scores at this sample size.
  GaussianMixture ring{2, {}, {}, {}};
  for (int k = 0; k < 8; ++k) {
    ring.weights.push_back(1.0 / 8);
    ring.means.push_back({std::cos(k * M_PI / 4), std::sin(k * M_PI / 4)});
    ring.stds.push_back(0.1);
  }
  constexpr int64_t n = 8000;
  const auto swd = [](const std::vector<double>& a, const std::vector<double>& b) {
    return haze::metrics::sliced_wasserstein(a, b, 2, 64, 64);
  };
  const auto reference = ring.sample(n, 1), other = ring.sample(n, 2);
  const double floor = swd(reference, other);
  using P = predict::Velocity;  // exercise another parameterization end to end
  const Schedule& s = linear_schedule();
  const auto check = [&](const char* name, const std::vector<double>& v) {
    const double d = swd(v, reference);
    INFO(name << ": SWD " << d << " against floor " << floor);
    CHECK(d <= 2 * floor);
  };
  check("Ddpm 1000", draw<P>(sample::Ddpm<P>(s, {}), ring, n, 21));
  check("DpmSolverPP2M 100 karras",
        draw<P>(sample::DpmSolverPP2M<P>(s, sigma_options<sample::DpmSolverPP2M<P>>(100)), ring, n, 22));
  check("Heun 100 karras", draw<P>(sample::Heun<P>(s, sigma_options<sample::Heun<P>>(100)), ring, n, 23));
}

TEST_CASE("convergence order: Euler 1, Heun 2, DPM-Solver++(2M) 2", "[sampler][order]") {
  // Gaussian data N(mu, s^2): the probability-flow ODE in sigma space has the
  // exact solution x~(sigma) = mu + (x~_T - mu) sqrt(s^2 + sigma^2) / sqrt(s^2 + sigma_max^2),
  // and every sampler ends with D(x~, sigma_min) = mu + s^2/(s^2 + sigma_min^2)(x~ - mu).
  // The error against that, on Karras grids of N = 32, 64, 128 steps, must
  // fall with the slope of the method's order (fitted in log-log, +-0.15).
  const double mu = 0.3, sd = 0.5;
  const GaussianMixture data = GaussianMixture::gaussian(mu, sd);
  const Schedule& s = linear_schedule();
  const std::vector<double> starts = {-2, -1, 0, 0.5, 1, 2};
  const auto error = [&](auto sampler) {
    const auto& sig = sampler.grid().sigmas;
    const double smax = sig.front(), slast = sig[sig.size() - 2];
    Generator gen{0};
    auto denoiser = haze::test::exact_denoiser<predict::Epsilon, double, Cpu>(data, s);
    const auto out = sampler.run(denoiser, Tensor::from_host({6, 1}, starts), gen).to_host();
    double worst = 0;
    for (size_t i = 0; i < starts.size(); ++i) {
      const double xt = starts[i] * std::sqrt(1 + smax * smax);
      const double at_last = mu + (xt - mu) * std::sqrt(sd * sd + slast * slast) / std::sqrt(sd * sd + smax * smax);
      const double exact = mu + sd * sd / (sd * sd + slast * slast) * (at_last - mu);
      worst = std::max(worst, std::abs(out[i] - exact));
    }
    return worst;
  };
  const auto slope = [&](auto make) {
    const double e32 = error(make(32)), e128 = error(make(128));
    INFO("errors " << e32 << " at 32 steps, " << e128 << " at 128");
    return std::log(e32 / e128) / std::log(4.0);
  };
  using P = predict::Epsilon;
  const double euler = slope([&](int N) { return sample::Euler<P>(s, sigma_options<sample::Euler<P>>(N)); });
  const double heun = slope([&](int N) { return sample::Heun<P>(s, sigma_options<sample::Heun<P>>(N)); });
  const double dpm =
      slope([&](int N) { return sample::DpmSolverPP2M<P>(s, sigma_options<sample::DpmSolverPP2M<P>>(N)); });
  INFO("slopes: Euler " << euler << ", Heun " << heun << ", DPM-Solver++(2M) " << dpm);
  CHECK(std::abs(euler - 1) <= 0.15);
  CHECK(std::abs(heun - 2) <= 0.15);
  CHECK(std::abs(dpm - 2) <= 0.15);
}

TEST_CASE("known identities between samplers hold to rounding", "[sampler]") {
  const GaussianMixture data{1, {0.5, 0.5}, {{-1.0}, {1.0}}, {0.3, 0.3}};
  const Schedule& s = linear_schedule();
  using P = predict::Epsilon;
  const auto same = [](const std::vector<double>& a, const std::vector<double>& b) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
    INFO("largest difference " << worst);
    CHECK(worst <= 1e-9);  // the same arithmetic reordered: double rounding over 50 steps
  };
  SECTION("DDIM at eta = 0 is Euler in sigma space on the same timesteps") {
    sample::Euler<P>::Options o;
    o.steps = 50;
    same(draw<P>(sample::Ddim<P>(s, {.steps = 50}), data, 200, 1), draw<P>(sample::Euler<P>(s, o), data, 200, 1));
  }
  SECTION("DDIM at eta = 1 is DDPM's ancestral sampler") {
    same(draw<P>(sample::Ddim<P>(s, {.steps = 50, .eta = 1}), data, 200, 2),
         draw<P>(sample::Ddpm<P>(s, {.steps = 50}), data, 200, 2));
  }
  SECTION("the parameterization does not change a sampler driven by the exact model") {
    sample::DpmSolverPP2M<P>::Options o;
    o.steps = 20;
    const auto eps = draw<predict::Epsilon>(sample::DpmSolverPP2M<predict::Epsilon>(s, o), data, 200, 3);
    same(eps, draw<predict::Sample>(sample::DpmSolverPP2M<predict::Sample>(s, o), data, 200, 3));
    same(eps, draw<predict::Velocity>(sample::DpmSolverPP2M<predict::Velocity>(s, o), data, 200, 3));
  }
}

TEST_CASE("DDIM at eta = 0 is deterministic; stochastic samplers follow their seed", "[sampler]") {
  const GaussianMixture data = GaussianMixture::gaussian(0, 1);
  const Schedule& s = linear_schedule();
  using P = predict::Epsilon;
  auto denoiser = haze::test::exact_denoiser<P, double, Cpu>(data, s);
  const sample::Ddim<P> ddim(s, {.steps = 20});
  Generator g1{1}, g2{2};
  const auto a = ddim.run(denoiser, noise({64, 1}, 5), g1).to_host();
  const auto b = ddim.run(denoiser, noise({64, 1}, 5), g2).to_host();
  CHECK(a == b);
  CHECK(g1.offset == 0);  // no noise drawn
  const sample::Ddpm<P> ddpm(s, {.steps = 20});
  Generator h1{1}, h2{1}, h3{2};
  const auto c = ddpm.run(denoiser, noise({64, 1}, 5), h1).to_host();
  CHECK(c == ddpm.run(denoiser, noise({64, 1}, 5), h2).to_host());
  CHECK(c != ddpm.run(denoiser, noise({64, 1}, 5), h3).to_host());
}

TEST_CASE("samplers step to the next entry of the timestep array", "[sampler][timesteps]") {
  // A denoiser that records its t and answers eps = x_t. DDIM then maps x_t to
  //   x_s = [sqrt(ab_s) (1 - sqrt(1 - ab_t)) / sqrt(ab_t) + sqrt(1 - ab_s)] x_t,
  // so the final value is the product of that factor over the (t, s) pairs
  // the sampler used; s = t - T/N would give another product for trailing
  // and linspace spacing.
  const Schedule& s = linear_schedule();
  for (auto spacing : {sample::Spacing::Leading, sample::Spacing::Trailing, sample::Spacing::Linspace}) {
    const sample::Ddim<predict::Epsilon> ddim(s, {.steps = 7, .spacing = spacing});
    std::vector<double> seen;
    auto echo = [&seen](const Tensor& x, double t) {
      seen.push_back(t);
      return x.clone();
    };
    Generator gen{0};
    const double out = ddim.run(echo, Tensor::full({1, 1}, 1.0), gen).to_host()[0];
    const std::vector<int> ts = sample::timesteps(1000, 7, spacing);
    double expected = 1;
    for (size_t i = 0; i < ts.size(); ++i) {
      const double ab = s.alpha_bar(ts[i]), ab_s = i + 1 < ts.size() ? s.alpha_bar(ts[i + 1]) : 1.0;
      expected *= std::sqrt(ab_s) * (1 - std::sqrt(1 - ab)) / std::sqrt(ab) + std::sqrt(1 - ab_s);
    }
    CHECK(seen == std::vector<double>(ts.begin(), ts.end()));
    CHECK(out == Approx(expected).epsilon(1e-12));
  }
}

TEST_CASE("classifier-free guidance mixes the two predictions linearly", "[sampler][guidance]") {
  auto cond = [](const Tensor& x, double) { return Tensor::full(x.shape(), 2.0); };
  auto uncond = [](const Tensor& x, double) { return Tensor::full(x.shape(), 0.5); };
  sample::Guided guided(cond, uncond, 3.0);
  const auto out = guided(Tensor::zeros({2, 2}), 10.0).to_host();
  for (double v : out) CHECK(v == Approx(0.5 + 3.0 * (2.0 - 0.5)));
  sample::Guided plain(cond, uncond, 1.0);
  for (double v : plain(Tensor::zeros({2, 2}), 10.0).to_host()) CHECK(v == 2.0);
  CHECK_THROWS_WITH(sample::Guided(cond, uncond, -1.0), mentions("scale must be >= 0"));
}

TEST_CASE("progress reports every step", "[sampler]") {
  const GaussianMixture data = GaussianMixture::gaussian(0, 1);
  std::vector<std::pair<int, int>> calls;
  sample::Heun<predict::Epsilon>::Options o;
  o.steps = 5;
  o.progress = [&calls](int done, int total) { calls.emplace_back(done, total); };
  draw<predict::Epsilon>(sample::Heun<predict::Epsilon>(linear_schedule(), o), data, 4, 1);
  CHECK(calls == std::vector<std::pair<int, int>>{{1, 5}, {2, 5}, {3, 5}, {4, 5}, {5, 5}});
}

TEST_CASE("samplers reject bad options and bad denoisers with the step named", "[sampler][errors]") {
  const Schedule& s = linear_schedule();
  using P = predict::Epsilon;
  CHECK_THROWS_WITH(sample::Ddim<P>(s, {.steps = -1}), mentions("(the schedule's length), got -1"));
  CHECK_THROWS_WITH(sample::Ddim<P>(s, {.steps = 1001}), mentions("got 1001"));
  CHECK_THROWS_WITH(sample::Ddim<P>(s, {.steps = 10, .eta = 1.5}), mentions("Ddim: eta must be in [0, 1], got 1.5"));
  CHECK_THROWS_WITH(sample::Ddim<P>(s, {.steps = 10, .eta = -0.1}), mentions("eta must be in [0, 1]"));
  CHECK_THROWS_WITH(sample::Ddpm<P>(s, {.steps = 2000}), mentions("got 2000"));
  CHECK_THROWS_WITH(sample::Heun<P>(s, sigma_options<sample::Heun<P>>(0)), mentions("need 1 <= steps <= 1000"));

  Generator gen{0};
  const sample::Ddim<P> ddim(s, {.steps = 10});
  auto wrong_shape = [](const Tensor&, double) { return Tensor::zeros({3, 3}); };
  CHECK_THROWS_WITH(ddim.run(wrong_shape, Tensor::zeros({2, 1}), gen),
                    mentions("Ddim: the denoiser returned shape [3, 3] for input [2, 1] at step 1 of 10 (t = 900)"));
  int calls = 0;
  auto goes_bad = [&calls](const Tensor& x, double) {
    auto out = Tensor::zeros(x.shape());
    if (++calls == 4) out.assign_from_host(std::vector<double>{0.0, NAN});
    return out;
  };
  CHECK_THROWS_WITH(ddim.run(goes_bad, Tensor::zeros({2, 1}), gen),
                    mentions("returned 1 non-finite values at step 4 of 10 (t = 600)"));
  auto infinite = [](const Tensor& x, double) { return Tensor::full(x.shape(), INFINITY); };
  const sample::DpmSolverPP2M<P> dpm(s, sigma_options<sample::DpmSolverPP2M<P>>(5));
  CHECK_THROWS_WITH(dpm.run(infinite, Tensor::zeros({2, 1}), gen), mentions("DpmSolverPP2M: the denoiser returned 2 non-finite"));
  CHECK_THROWS_WITH(ddim.run(infinite, Tensor(), gen), mentions("the starting noise x_T is empty"));

  const Schedule zero_snr = Schedule::make("linear", 1000, {}, true);
  CHECK_THROWS_WITH((sample::Euler<P>(zero_snr, {.sigmas = {5000.0, 1.0}})),
                    mentions("Euler: sigma 5000 is above the schedule's largest, 4096"));
  CHECK_THROWS_WITH((sample::Euler<P>(zero_snr, {.steps = 1000, .spacing = sample::Spacing::Trailing})),
                    mentions("Euler: the sigma of t = 998, 15406") && mentions("take fewer steps"));
  const sample::Ddim<P> ddim_trailing(zero_snr, {.steps = 10, .spacing = sample::Spacing::Trailing});
  CHECK_THROWS_WITH(ddim_trailing.run(infinite, Tensor::zeros({2, 1}), gen),
                    mentions("where an epsilon prediction cannot give x0"));
  CHECK_THROWS_WITH((sample::ReverseSde<P>(zero_snr, {.spacing = sample::Spacing::Trailing})), mentions("integrated beta is infinite"));
}

TEST_CASE("zero terminal SNR with v-prediction samples from pure noise", "[sampler][zero-snr]") {
  // With alpha_bar(T-1) = 0 the first DDIM step sees no signal at all; the
  // velocity parameterization still gives x0 = -v there (Lin et al. 2024).
  const Schedule zero_snr = Schedule::make("scaled_linear", 1000, {}, true);
  const GaussianMixture data = GaussianMixture::gaussian(0.3, 0.5);
  using P = predict::Velocity;
  const sample::Ddim<P> ddim(zero_snr, {.steps = 100, .spacing = sample::Spacing::Trailing});
  auto denoiser = haze::test::exact_denoiser<P, double, Cpu>(data, zero_snr);
  Generator gen{3};
  const Moments m = moments(ddim.run(denoiser, noise({20000, 1}, 4), gen).to_host());
  INFO("mean " << m.mean << ", variance " << m.var);
  // 5 standard errors at n = 20000, plus 0.01 for 100 first-order steps.
  CHECK(std::abs(m.mean - 0.3) <= 5 * 0.5 / std::sqrt(20000.0));
  CHECK(std::abs(m.var - 0.25) <= 5 * 0.25 * std::sqrt(2.0 / 20000) + 0.01);
}

TEST_CASE("sigma-space samplers start a zero-terminal-SNR schedule at alpha_bar 2^-24", "[sampler][zero-snr]") {
  // diffusers' clamp: sigma_max = sqrt((1 - 2^-24) / 2^-24), about 4096.
  const Schedule zero_snr = Schedule::make("scaled_linear", 1000, {}, true);
  using P = predict::Velocity;
  const double smax = std::sqrt((1 - 0x1p-24) / 0x1p-24);
  const sample::Euler<P> karras(zero_snr, {.steps = 25, .karras = true});
  CHECK(karras.grid().sigmas.front() == smax);
  CHECK(karras.grid().ts.front() == 999);
  for (size_t i = 1; i + 1 < karras.grid().ts.size(); ++i) {  // t increases with sigma, within [0, 999]
    CHECK(karras.grid().ts[i] < karras.grid().ts[i - 1]);
    CHECK(karras.grid().ts[i] > 0);
  }
  const sample::Euler<P> trailing(zero_snr, {.steps = 25, .spacing = sample::Spacing::Trailing});
  CHECK(trailing.grid().sigmas.front() == smax);
  // and they sample: the exact-score Gaussian's moments, as DDIM's test above
  // (tolerance: 5 standard errors plus 0.02 for 50 second-order steps).
  const GaussianMixture data = GaussianMixture::gaussian(0.3, 0.5);
  for (const char* name : {"heun", "dpmpp2m"}) {
    INFO(name);
    Generator gen{3};
    auto denoiser = haze::test::exact_denoiser<P, double, Cpu>(data, zero_snr);
    const sample::SamplerSettings settings{.steps = 50, .karras = true};
    const Moments m =
        moments(sample::run_sampler<P>(name, zero_snr, settings, denoiser, noise({20000, 1}, 4), gen).to_host());
    INFO("mean " << m.mean << ", variance " << m.var);
    CHECK(std::abs(m.mean - 0.3) <= 5 * 0.5 / std::sqrt(20000.0));
    CHECK(std::abs(m.var - 0.25) <= 5 * 0.25 * std::sqrt(2.0 / 20000) + 0.02);
  }
}

TEST_CASE("x0 clipping clamps the estimate to [-1, 1]", "[sampler]") {
  // One step from t = 999 straight to the data (ab_prev = 1) returns x0 itself.
  const Schedule& s = linear_schedule();
  auto too_big = [](const Tensor& x, double) { return Tensor::full(x.shape(), 5.0); };  // x0 = 5
  Generator gen{0};
  const sample::Ddim<predict::Sample> ddim(s, {.steps = 1, .clip_x0 = true});
  for (double v : ddim.run(too_big, Tensor::zeros({2, 2}), gen).to_host()) CHECK(v == Approx(1.0).epsilon(1e-12));
  const sample::Ddpm<predict::Sample> ddpm(s, {.steps = 1, .clip_x0 = true});
  for (double v : ddpm.run(too_big, Tensor::zeros({2, 2}), gen).to_host()) CHECK(v == Approx(1.0).epsilon(1e-12));
  const sample::Ddim<predict::Sample> unclipped(s, {.steps = 1});
  for (double v : unclipped.run(too_big, Tensor::zeros({2, 2}), gen).to_host()) CHECK(v == Approx(5.0).epsilon(1e-12));
  // The sigma-space samplers: one step lands on sigma = 0, that is on x0.
  const sample::SigmaOptions clip{.steps = 1, .clip_x0 = true}, no_clip{.steps = 1};
  const auto all_equal = [](const Tensor& x, double want) {
    for (double v : x.to_host()) CHECK(v == Approx(want).epsilon(1e-12));
  };
  all_equal(sample::Euler<predict::Sample>(s, clip).run(too_big, Tensor::zeros({2, 2}), gen), 1.0);
  all_equal(sample::EulerAncestral<predict::Sample>(s, clip).run(too_big, Tensor::zeros({2, 2}), gen), 1.0);
  all_equal(sample::Heun<predict::Sample>(s, clip).run(too_big, Tensor::zeros({2, 2}), gen), 1.0);
  all_equal(sample::DpmSolverPP2M<predict::Sample>(s, clip).run(too_big, Tensor::zeros({2, 2}), gen), 1.0);
  all_equal(sample::DpmSolverPP2M<predict::Sample>(s, no_clip).run(too_big, Tensor::zeros({2, 2}), gen), 5.0);
}

TEMPLATE_TEST_CASE("Ddim's one-pass step equals the ops it stands for, bit for bit", "[sample][ddim]", float, double) {
  // The reference: the step as separate ops (ops::lincomb, a clamp), in
  // the order of the formulas in sample/ddim.hpp. Same expressions in
  // T, so the same bits (this build does not contract a x + b y).
  using T = TestType;
  using Tn = haze::Tensor<T, Cpu>;
  const Schedule& s = linear_schedule();
  const auto denoiser = [](const Tn& x, double t) {  // any smooth function of (x, t)
    Tn out(x.shape());
    haze::ops::lincomb(out, 0.9 - t / 2000, x, 0.0, x);
    return out;
  };
  for (const bool clip : {false, true})
    for (const double eta : {0.0, 1.0}) {
      CAPTURE(clip, eta);
      const haze::sample::Ddim<haze::predict::Velocity> ddim(s, {.steps = 7, .eta = eta, .clip_x0 = clip});
      Generator start{3};
      Tn x({2, 3, 5});
      haze::randn(x, start);
      Tn ref = x.clone();
      Generator gen = start, gen_ref = start;
      const Tn got = ddim.run(denoiser, std::move(x), gen);

      const std::vector<int> ts = haze::sample::timesteps(s.steps(), 7, haze::sample::Spacing::Leading);
      Tn x0(ref.shape()), eps(ref.shape()), z(ref.shape());
      for (size_t i = 0; i < ts.size(); ++i) {
        const double ab = s.alpha_bar(ts[i]), ab_prev = i + 1 < ts.size() ? s.alpha_bar(ts[i + 1]) : 1.0;
        const Tn out = denoiser(ref, ts[i]);
        const auto c = haze::predict::Velocity::x0_from(ab), e = haze::predict::Velocity::eps_from(ab);
        haze::ops::lincomb(x0, c.first, ref, c.second, out);
        haze::ops::lincomb(eps, e.first, ref, e.second, out);
        if (clip) {
          haze::ops::map(x0, [](T v) { return v < T(-1) ? T(-1) : (v > T(1) ? T(1) : v); }, x0);
          haze::ops::lincomb(eps, 1 / std::sqrt(1 - ab), ref, -std::sqrt(ab / (1 - ab)), x0);
        }
        const double sigma = eta * std::sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev));
        const double direction = std::sqrt(std::max(0.0, 1 - ab_prev - sigma * sigma));
        if (sigma > 0) {
          haze::randn(z, gen_ref);
          haze::ops::lincomb(ref, std::sqrt(ab_prev), x0, direction, eps, sigma, z);
        } else {
          haze::ops::lincomb(ref, std::sqrt(ab_prev), x0, direction, eps);
        }
      }
      CHECK(got.to_host() == ref.to_host());
      CHECK(gen.offset == gen_ref.offset);
    }
}

TEST_CASE("run_sampler passes each of its settings to the sampler it picks", "[sampler][by-name]") {
  // Each setting away from its default, run by name and by the sampler's own
  // type on the same noise: the same bits, so none was dropped on the way.
  const GaussianMixture data = GaussianMixture::gaussian(0.3, 0.5);
  const Schedule& s = linear_schedule();
  using P = predict::Epsilon;
  const auto by_name = [&](const char* name, const sample::SamplerSettings& settings) {
    Generator gen{7, 1 << 20};
    auto denoiser = haze::test::exact_denoiser<P, double, Cpu>(data, s);
    return sample::run_sampler<P>(name, s, settings, denoiser, noise({64, data.dim}, 7), gen).to_host();
  };
  const auto direct = [&](const auto& sampler) {
    Generator gen{7, 1 << 20};
    auto denoiser = haze::test::exact_denoiser<P, double, Cpu>(data, s);
    return sampler.run(denoiser, noise({64, data.dim}, 7), gen).to_host();
  };
  const sample::SamplerSettings settings{.steps = 20,
                                         .clip_x0 = true,
                                         .spacing = sample::Spacing::Trailing,
                                         .karras = false,
                                         .variance = sample::Variance::FixedLarge};
  const sample::SigmaOptions sigma{.steps = 20, .spacing = sample::Spacing::Trailing, .karras = false, .clip_x0 = true};
  CHECK(by_name("ddpm", settings) == direct(sample::Ddpm<P>(s, {.steps = 20, .spacing = sample::Spacing::Trailing,
                                                               .variance = sample::Variance::FixedLarge,
                                                               .clip_x0 = true})));
  CHECK(by_name("ddim", settings) ==
        direct(sample::Ddim<P>(s, {.steps = 20, .spacing = sample::Spacing::Trailing, .clip_x0 = true})));
  CHECK(by_name("sde", settings) == direct(sample::ReverseSde<P>(s, {.steps = 20, .spacing = sample::Spacing::Trailing})));
  CHECK(by_name("euler", settings) == direct(sample::Euler<P>(s, sigma)));
  CHECK(by_name("euler_a", settings) == direct(sample::EulerAncestral<P>(s, sigma)));
  CHECK(by_name("heun", settings) == direct(sample::Heun<P>(s, sigma)));
  CHECK(by_name("dpmpp2m", settings) == direct(sample::DpmSolverPP2M<P>(s, sigma)));
  // and the short form keeps haze's defaults: Karras sigmas on this schedule
  Generator gen{7, 1 << 20};
  auto denoiser = haze::test::exact_denoiser<P, double, Cpu>(data, s);
  CHECK(sample::run_sampler<P>("euler", s, 20, denoiser, noise({64, data.dim}, 7), gen).to_host() ==
        direct(sample::Euler<P>(s, {.steps = 20, .karras = true})));
}

TEST_CASE("Karras sigmas are the default only where the schedule's sigma_max is not huge", "[sampler][karras]") {
  // Data N(0.3, 0.5^2), 20000 draws, 25 steps. On the cosine schedule
  // (sigma_max ~2e4) Karras sigmas miss the variance by 40-45% for Euler and
  // Heun; the leading grid by 12% and 0.2% (the first-order Euler's own
  // discretisation error; standard error of the variance 0.7%). So the
  // default there is the leading grid, and it stays within 15% for Euler and
  // 3% for Heun, where Karras does not come within 35%.
  const GaussianMixture data = GaussianMixture::gaussian(0.3, 0.5);
  const Schedule cosine = Schedule::make("cosine", 1000);
  CHECK_FALSE(sample::default_karras(cosine));
  CHECK(sample::default_karras(linear_schedule()));
  CHECK(sample::default_karras(Schedule::make("scaled_linear", 1000)));
  using P = predict::Epsilon;
  const auto variance = [&](const char* name, std::optional<bool> karras) {
    Generator gen{1, 1 << 20};
    auto denoiser = haze::test::exact_denoiser<P, double, Cpu>(data, cosine);
    const sample::SamplerSettings settings{.steps = 25, .karras = karras};
    return moments(sample::run_sampler<P>(name, cosine, settings, denoiser, noise({20000, data.dim}, 1), gen).to_host())
        .var;
  };
  for (const auto& [name, bound] : {std::pair<const char*, double>{"euler", 0.15}, {"heun", 0.03}}) {
    INFO(name);
    const double by_default = variance(name, std::nullopt), karras = variance(name, true);
    CHECK(by_default == variance(name, false));
    CHECK(std::abs(by_default / 0.25 - 1) < bound);
    CHECK(std::abs(karras / 0.25 - 1) > 0.35);
  }
}

TEST_CASE("explicit grids, steps_offset and diffusers' previous timestep", "[sampler][timesteps]") {
  const Schedule& s = linear_schedule();
  using P = predict::Epsilon;
  // steps_offset moves a leading grid (only), and may not push it past T - 1.
  CHECK(sample::timesteps(1000, 10, sample::Spacing::Leading, 1) ==
        std::vector<int>{901, 801, 701, 601, 501, 401, 301, 201, 101, 1});
  CHECK(sample::timesteps(1000, 10, sample::Spacing::Trailing, 1) == sample::timesteps(1000, 10, sample::Spacing::Trailing));
  CHECK_THROWS_WITH(sample::timesteps(1000, 1000, sample::Spacing::Leading, 1),
                    mentions("steps_offset 1 moves the first of 1000 leading timesteps to 1000, past the schedule's last, 999"));
  CHECK(sample::Ddim<P>(s, {.steps = 4, .steps_offset = 3}).timesteps_used() == std::vector<int>{753, 503, 253, 3});

  // An explicit grid is taken as given, and checked.
  CHECK(sample::Ddim<P>(s, {.timesteps = {999, 500, 10}}).timesteps_used() == std::vector<int>{999, 500, 10});
  CHECK(sample::Ddpm<P>(s, {.timesteps = {7, 3}}).timesteps_used() == std::vector<int>{7, 3});
  CHECK_THROWS_WITH(sample::Ddim<P>(s, {.timesteps = {10, 500}}),
                    mentions("timesteps must decrease, but timesteps[1] = 500 follows 10"));
  CHECK_THROWS_WITH(sample::Ddim<P>(s, {.timesteps = {1000}}), mentions("timesteps[0] = 1000 is outside [0, 1000)"));
  const std::vector<double> sigmas = {50.0, 3.0, 0.5, 0.02};
  const sample::Euler<P> euler(s, {.sigmas = sigmas});
  CHECK(euler.grid().sigmas == std::vector<double>{50.0, 3.0, 0.5, 0.02, 0.0});
  CHECK(euler.timesteps_used() == euler.grid().ts);
  for (size_t i = 0; i < sigmas.size(); ++i) CHECK(s.sigma_at(euler.grid().ts[i]) == Approx(sigmas[i]).epsilon(1e-12));
  CHECK_THROWS_WITH(sample::Euler<P>(s, {.sigmas = {1.0, 2.0}}), mentions("sigmas must decrease, but sigmas[1] = 2"));
  CHECK_THROWS_WITH(sample::Heun<P>(s, {.sigmas = {1.0, -2.0}}), mentions("Heun: sigmas[1] = -2 is not finite and > 0"));

  // previous_by_stride: t - T / N. On an evenly divided leading grid that is
  // the next entry, so nothing changes; on 1000 / 7 trailing it is not.
  const GaussianMixture data = GaussianMixture::gaussian(0.3, 0.5);
  const auto ddim = [&](sample::DdimOptions options) {
    Generator gen{3};
    auto denoiser = haze::test::exact_denoiser<P, double, Cpu>(data, s);
    return sample::Ddim<P>(s, options).run(denoiser, noise({16, data.dim}, 3), gen).to_host();
  };
  CHECK(ddim({.steps = 10}) == ddim({.steps = 10, .previous_by_stride = true}));
  CHECK(ddim({.steps = 7, .spacing = sample::Spacing::Trailing}) !=
        ddim({.steps = 7, .spacing = sample::Spacing::Trailing, .previous_by_stride = true}));
}
