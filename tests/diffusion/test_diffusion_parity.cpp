// The diffusion pieces on backend::Device against backend::Cpu in float:
// the forward process, the loss, and whole sampling runs from the same seed.
#include <haze/diffusion/forward_process.hpp>
#include <haze/diffusion/loss.hpp>
#include <haze/haze.hpp>
#include <haze/sample/ddpm.hpp>
#include <haze/sample/dpm_solver.hpp>
#include <haze/sample/euler.hpp>

#include <sstream>

#include "diffusion/exact_score.hpp"
#include "test_support.hpp"

using haze::Generator;
using haze::Schedule;
using haze::backend::Cpu;
using haze::backend::Device;
namespace predict = haze::predict;
namespace sample = haze::sample;

namespace {

template <class B>
using Tensor = haze::Tensor<float, B>;

template <class B>
Tensor<B> normal(haze::Shape shape, uint64_t seed) {
  Tensor<B> x(shape);
  Generator gen{seed};
  haze::randn(x, gen);  // bit-identical on both backends
  return x;
}

void require_close(const Tensor<Device>& got, const Tensor<Cpu>& expected, double atol, double rtol) {
  const auto c = haze::verify::compare(got, expected, atol, rtol);
  std::ostringstream report;
  report << c;
  INFO(report.str());
  REQUIRE(c.ok());
}

}  // namespace

TEST_CASE("Device forward process and loss equal Cpu", "[device][diffusion]") {
  const Schedule s = Schedule::make("cosine", 1000);
  const haze::ForwardProcess<float, Cpu> cpu(s);
  const haze::ForwardProcess<float, Device> device(s);
  const std::vector<int> ts = {0, 10, 500, 999};
  // One or two roundings per element; a GPU may fuse a*x + b*y: 2 eps(float)
  // relative to the O(1) terms.
  const double tol = 2 * 1.2e-7;
  const auto x_cpu = cpu.marginal(normal<Cpu>({4, 3, 8, 8}, 1), ts, normal<Cpu>({4, 3, 8, 8}, 2));
  const auto x_dev = device.marginal(normal<Device>({4, 3, 8, 8}, 1), ts, normal<Device>({4, 3, 8, 8}, 2));
  require_close(x_dev, x_cpu, tol, tol);
  require_close(device.step(x_dev, 37, x_dev), cpu.step(x_cpu, 37, x_cpu), tol, tol);

  Tensor<Cpu> grad_cpu({4, 3, 8, 8});
  auto grad_dev = Tensor<Device>::full({4, 3, 8, 8}, haze::test::sentinel<float>());
  const auto w = haze::min_snr_weights<predict::Velocity>(s, ts, 5.0);
  const double loss_cpu = haze::mse_loss(x_cpu, normal<Cpu>({4, 3, 8, 8}, 3), w, grad_cpu);
  const double loss_dev = haze::mse_loss(x_dev, normal<Device>({4, 3, 8, 8}, 3), w, grad_dev);
  // Per-sample sums accumulate in double, then round to float once.
  CHECK(loss_dev == Approx(loss_cpu).epsilon(4 * 1.2e-7));
  require_close(grad_dev, grad_cpu, tol, tol);
}

TEST_CASE("Device sampling runs equal Cpu from the same seed", "[device][sampler]") {
  // The noise is bit-identical (Philox) and every update is a few float
  // roundings per element, the denoiser being the same host function; so the
  // backends can differ only by FMA contraction on a GPU, a few float ulps
  // per step of O(1) values. 1e-4 absolute covers 50 such steps with room.
  const Schedule s = Schedule::make("linear", 1000);
  const haze::test::GaussianMixture data{2, {0.5, 0.5}, {{-1.0, 0.5}, {1.0, -0.5}}, {0.3, 0.2}};
  const auto run = [&](const auto& sampler) {
    Generator gc{7, 1 << 20}, gd{7, 1 << 20};
    auto dc = haze::test::exact_denoiser<predict::Epsilon, float, Cpu>(data, s);
    auto dd = haze::test::exact_denoiser<predict::Epsilon, float, Device>(data, s);
    const auto out_cpu = sampler.run(dc, normal<Cpu>({256, 2}, 8), gc);
    const auto out_dev = sampler.run(dd, normal<Device>({256, 2}, 8), gd);
    CHECK(gc.offset == gd.offset);
    require_close(out_dev, out_cpu, 1e-4, 1e-4);
  };
  run(sample::Ddpm<predict::Epsilon>(s, {.steps = 50}));
  sample::EulerAncestral<predict::Epsilon>::Options ea;
  ea.steps = 30;
  ea.karras = true;
  run(sample::EulerAncestral<predict::Epsilon>(s, ea));
  sample::DpmSolverPP2M<predict::Epsilon>::Options dpm;
  dpm.steps = 20;
  run(sample::DpmSolverPP2M<predict::Epsilon>(s, dpm));
}
