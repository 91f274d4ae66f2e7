// MlpDenoiser (the toy 2-D model): its hand-written backward against central
// finite differences in double (error measure of gradcheck.hpp < 1e-6), and
// its input checks.
#include <haze/haze.hpp>
#include <haze/nn/init.hpp>
#include <haze/nn/mlp_denoiser.hpp>
#include <haze/verify/gradcheck.hpp>

#include <sstream>

#include "test_support.hpp"

using haze::backend::Cpu;
using haze::test::mentions;
using Tensor = haze::Tensor<double, Cpu>;

TEST_CASE("MlpDenoiser backward matches finite differences", "[nn][mlp][gradcheck]") {
  haze::nn::MlpDenoiser<double, Cpu> model(2, 16, 3);
  haze::nn::init_parameters(model, 5);
  Tensor x = Tensor::from_host({5, 2}, haze::test::uniform<double>(10, 3));
  const std::vector<double> t = {0, 3, 17.5, 250, 999};
  const auto report = haze::verify::gradcheck<double, Cpu>(
      model, {&x}, [&] { return model.forward(x, t); },
      [&](const Tensor& dy) {
        std::vector<Tensor> d;
        d.push_back(model.backward(dy));
        return d;
      },
      {.samples = 12});
  std::ostringstream text;
  text << report;
  INFO(text.str());
  CHECK(report.entries.size() == 1 + 2 * 6);  // the input; input, time, 3 blocks, output (weight and bias each)
  CHECK(report.worst() < 1e-6);
  // infer gives forward's numbers without caching.
  const auto y = model.forward(x, t).to_host();
  CHECK(model.infer(x, t).to_host() == y);
}

TEST_CASE("MlpDenoiser rejects bad input", "[nn][mlp][errors]") {
  haze::nn::MlpDenoiser<float, Cpu> model(2, 8, 1);
  using F = haze::Tensor<float, Cpu>;
  const std::vector<double> t = {1, 2};
  CHECK_THROWS_WITH(model.forward(F::zeros({2, 3}), t), mentions("expects input [N, 2], got [2, 3]"));
  CHECK_THROWS_WITH(model.forward(F::zeros({2, 2}), std::vector<double>{1}), mentions("1 timesteps for a batch of 2"));
  CHECK_THROWS_WITH(model.forward(F::zeros({2, 2}), t, std::vector<int64_t>{0, 1}), mentions("labels given to an unconditional model"));
  CHECK_THROWS_WITH(model.backward(F::zeros({2, 2})), mentions("backward called without a matching forward"));
  CHECK_THROWS_WITH((haze::nn::MlpDenoiser<float, Cpu>(0, 8, 1)), mentions("dims and width must be > 0"));
}
