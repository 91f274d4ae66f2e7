// Layers against PyTorch (float64 reference, tests/golden/nn_golden.py, same
// semantics and parameter names as diffusers; weights from
// deterministic_init.hpp on both sides). In double haze must agree to 1e-10
// of each tensor's scale (only summation order differs); in float to 1e-5,
// the bar the U-Net issue sets for float layers.
#include <haze/haze.hpp>
#include <haze/nn/attention.hpp>
#include <haze/nn/conv2d.hpp>
#include <haze/nn/group_norm.hpp>
#include <haze/nn/linear.hpp>
#include <haze/nn/res_block.hpp>
#include <haze/nn/resample.hpp>
#include <haze/nn/timestep_embedding.hpp>

#include "nn/deterministic_init.hpp"
#include "nn/golden_file.hpp"

using haze::backend::Cpu;
namespace nn = haze::nn;

namespace {

template <class T>
constexpr double tolerance() {
  return std::is_same_v<T, double> ? 1e-10 : 1e-5;
}

// forward, then backward of dy; compares y, dx and every parameter gradient.
template <class T, class Layer>
void check_case(const std::string& name, Layer& layer) {
  using Tensor = haze::Tensor<T, Cpu>;
  const haze::test::GoldenFile golden(name);
  haze::test::deterministic_init(layer);
  const Tensor x = golden.tensor<T, Cpu>("input.x");
  const Tensor y = layer.forward(x);
  golden.check("output.y", y, tolerance<T>());
  golden.check("grad.input.x", layer.backward(golden.tensor<T, Cpu>("input.dy")), tolerance<T>());
  for (auto& p : nn::parameters_of(layer)) golden.check("grad." + p.name, *p.grad, tolerance<T>());
}

}  // namespace

TEMPLATE_TEST_CASE("layers match PyTorch: Linear, Conv2d, GroupNorm, SiLU", "[nn][golden]", float, double) {
  using T = TestType;
  SECTION("linear") { nn::Linear<T, Cpu> l(6, 4); check_case<T>("linear", l); }
  SECTION("conv3x3") { nn::Conv2d<T, Cpu> c(3, 5, 3, 1, 1); check_case<T>("conv3x3", c); }
  SECTION("conv_stride2") { nn::Conv2d<T, Cpu> c(3, 4, 3, 2, 1); check_case<T>("conv_stride2", c); }
  SECTION("conv1x1") { nn::Conv2d<T, Cpu> c(6, 3, 1); check_case<T>("conv1x1", c); }
  SECTION("group_norm") { nn::GroupNorm<T, Cpu> g(3, 6); check_case<T>("group_norm", g); }
  SECTION("silu") { nn::SiLU<T, Cpu> s; check_case<T>("silu", s); }
}

TEMPLATE_TEST_CASE("layers match PyTorch: Attention, Downsample, Upsample", "[nn][golden]", float, double) {
  using T = TestType;
  SECTION("attention") { nn::Attention<T, Cpu> a(8, 4, 2); check_case<T>("attention", a); }
  SECTION("downsample") { nn::Downsample<T, Cpu> d(4); check_case<T>("downsample", d); }
  SECTION("upsample") { nn::Upsample<T, Cpu> u(4); check_case<T>("upsample", u); }
}

TEMPLATE_TEST_CASE("ResBlock matches PyTorch's ResnetBlock2D", "[nn][golden]", float, double) {
  using T = TestType;
  const haze::test::GoldenFile golden("resnet");
  nn::ResBlock<T, Cpu> block(4, 8, 16, 2);
  haze::test::deterministic_init(block);
  const auto x = golden.tensor<T, Cpu>("input.x");
  const auto temb = golden.tensor<T, Cpu>("input.temb");
  golden.check("output.y", block.forward(x, temb), tolerance<T>());
  golden.check("grad.input.x", block.backward(golden.tensor<T, Cpu>("input.dy")), tolerance<T>());
  golden.check("grad.input.temb", block.backward_temb(), tolerance<T>());
  for (auto& p : nn::parameters_of(block)) golden.check("grad." + p.name, *p.grad, tolerance<T>());
}

TEMPLATE_TEST_CASE("timestep embedding matches PyTorch", "[nn][golden]", float, double) {
  using T = TestType;
  const haze::test::GoldenFile golden("timestep_embedding");
  const std::vector<double> t = golden.values("input.t");
  const auto sinusoid = nn::sinusoidal_embedding<T, Cpu>(t, 16);
  golden.check("output.sinusoidal", sinusoid, tolerance<T>());
  nn::TimestepEmbedding<T, Cpu> embedding(16, 64);
  haze::test::deterministic_init(embedding);
  golden.check("output.y", embedding.forward(sinusoid), tolerance<T>());
  embedding.backward(golden.tensor<T, Cpu>("input.dy"));
  for (auto& p : nn::parameters_of(embedding)) golden.check("grad." + p.name, *p.grad, tolerance<T>());
}
