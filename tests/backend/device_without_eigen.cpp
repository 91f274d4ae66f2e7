// A Device translation unit that names no Cpu: the layers, the UNet, the
// trainer, the samplers and the checkpoint I/O must not pull in the Cpu
// backend or Eigen (backends own their kernels; the Cpu's convolution lives
// in backend/cpu/). The #error is the test; the case below runs what the
// headers declare, so the templates are instantiated too.
#include <haze/backend/device.hpp>
#include <haze/diffusion/loss.hpp>
#include <haze/diffusion/schedule.hpp>
#include <haze/io/checkpoint.hpp>
#include <haze/nn/unet.hpp>
#include <haze/sample/by_name.hpp>
#include <haze/sample/guidance.hpp>
#include <haze/train/trainer.hpp>

#if defined(EIGEN_WORLD_VERSION)  // set by every Eigen header
#error "a Device translation unit included Eigen: some generic header reaches for the Cpu backend"
#endif

#include <cmath>
#include <vector>

#include "test_support.hpp"

TEST_CASE("a Device translation unit runs the UNet without the Cpu backend", "[device][nn][unet]") {
  using Tensor = haze::Tensor<float, haze::backend::Device>;
  haze::nn::UNet<float, haze::backend::Device> unet(haze::nn::UNetConfig::tiny());
  const auto x = Tensor::from_host({2, 1, 16, 16}, haze::test::uniform<float>(512, 5));
  const std::vector<double> t = {10, 500};
  const Tensor y = unet.forward(x, t);
  const Tensor dx = unet.backward(y);
  CHECK(y.shape() == x.shape());
  CHECK(dx.shape() == x.shape());
  for (const float v : y.to_host()) REQUIRE(std::isfinite(v));
  for (const float v : dx.to_host()) REQUIRE(std::isfinite(v));
}
