// Every layer's hand-written backward against central finite differences,
// in double on the Cpu backend (haze::verify::gradcheck). Criterion: the
// error measure of gradcheck.hpp below 1e-6 at every sampled element.
#include <haze/haze.hpp>
#include <haze/nn/activation.hpp>
#include <haze/nn/conv2d.hpp>
#include <haze/nn/group_norm.hpp>
#include <haze/nn/linear.hpp>
#include <haze/verify/gradcheck.hpp>

#include <sstream>

#include "nn/deterministic_init.hpp"
#include "test_support.hpp"

using haze::Shape;
using haze::backend::Cpu;
using haze::test::mentions;
namespace nn = haze::nn;
using Tensor = haze::Tensor<double, Cpu>;

namespace {

Tensor random_input(Shape shape, uint64_t seed) {
  return Tensor::from_host(shape, haze::test::uniform<double>(shape.numel(), seed));
}

// gradcheck for a one-input layer.
template <class Layer>
void check_layer(Layer& layer, Shape input_shape, int samples = 12) {
  haze::test::deterministic_init(layer);
  Tensor x = random_input(input_shape, 42);
  const auto report = haze::verify::gradcheck<double, Cpu>(
      layer, {&x}, [&] { return layer.forward(x); },
      [&](const Tensor& dy) {
        std::vector<Tensor> d;
        d.push_back(layer.backward(dy));
        return d;
      },
      {.samples = samples});
  std::ostringstream text;
  text << report;
  INFO(text.str());
  CHECK(report.worst() < 1e-6);
}

}  // namespace

TEST_CASE("Linear backward matches finite differences", "[nn][gradcheck]") {
  nn::Linear<double, Cpu> linear(6, 4);
  check_layer(linear, {3, 6});
}

TEST_CASE("Conv2d backward matches finite differences", "[nn][gradcheck]") {
  SECTION("3x3, stride 1, padding 1") {
    nn::Conv2d<double, Cpu> conv(3, 5, 3, 1, 1);
    check_layer(conv, {2, 3, 7, 6});
  }
  SECTION("3x3, stride 2, padding 1 (Downsample)") {
    nn::Conv2d<double, Cpu> conv(3, 4, 3, 2, 1);
    check_layer(conv, {2, 3, 8, 7});
  }
  SECTION("1x1 (the shortcut path, no im2col)") {
    nn::Conv2d<double, Cpu> conv(6, 3, 1);
    check_layer(conv, {2, 6, 4, 5});
  }
  SECTION("5x5, stride 3, padding 2") {
    nn::Conv2d<double, Cpu> conv(2, 3, 5, 3, 2);
    check_layer(conv, {1, 2, 9, 8});
  }
}

TEST_CASE("GroupNorm backward matches finite differences", "[nn][gradcheck]") {
  nn::GroupNorm<double, Cpu> norm(3, 6);
  check_layer(norm, {2, 6, 5, 4}, 24);
}

TEST_CASE("SiLU backward matches finite differences", "[nn][gradcheck]") {
  nn::SiLU<double, Cpu> silu;
  check_layer(silu, {2, 3, 4, 4}, 24);
}

TEST_CASE("layers reject bad shapes and a backward without forward", "[nn][errors]") {
  nn::Linear<double, Cpu> linear(6, 4);
  CHECK_THROWS_WITH(linear.forward(Tensor::zeros({3, 5})), mentions("Linear: expects input [rows, 6], got [3, 5]"));
  CHECK_THROWS_WITH(linear.backward(Tensor::zeros({3, 4})), mentions("Linear::backward called without a matching forward"));
  nn::Conv2d<double, Cpu> conv(3, 5, 3, 1, 1);
  CHECK_THROWS_WITH(conv.forward(Tensor::zeros({2, 4, 8, 8})), mentions("expects input [N, 3, H, W], got [2, 4, 8, 8]"));
  CHECK_THROWS_WITH(conv.backward(Tensor::zeros({2, 5, 8, 8})), mentions("Conv2d::backward called without a matching forward"));
  nn::Conv2d<double, Cpu> big(1, 1, 5);
  CHECK_THROWS_WITH(big.forward(Tensor::zeros({1, 1, 3, 3})), mentions("smaller than the 5x5 kernel"));
  CHECK_THROWS_WITH((nn::GroupNorm<double, Cpu>(4, 6)), mentions("GroupNorm: 4 groups do not divide 6 channels"));
  nn::GroupNorm<double, Cpu> norm(2, 6);
  CHECK_THROWS_WITH(norm.forward(Tensor::zeros({2, 4, 3, 3})), mentions("expects input [N, 6, H, W], got [2, 4, 3, 3]"));
  CHECK_THROWS_WITH(norm.backward(Tensor::zeros({2, 6, 3, 3})), mentions("GroupNorm::backward called without a matching forward"));
  const Tensor x = Tensor::zeros({2, 6});
  linear = nn::Linear<double, Cpu>(6, 4);
  (void)linear.forward(x);
  (void)linear.backward(Tensor::zeros({2, 4}));
  CHECK_THROWS_WITH(linear.backward(Tensor::zeros({2, 4})), mentions("without a matching forward"));  // cache dropped
}

namespace {
// A layer whose backward is wrong by 0.1%: gradcheck must notice.
struct SlightlyWrong {
  using value_type = double;
  using backend_type = Cpu;
  nn::Linear<double, Cpu> inner{3, 2};
  Tensor forward(const Tensor& x) { return inner.forward(x); }
  Tensor backward(const Tensor& dy) {
    Tensor dx = inner.backward(dy);
    haze::ops::scale(dx, 1.001);
    return dx;
  }
  void parameters(nn::Parameters<double, Cpu>& out, std::string_view prefix) { inner.parameters(out, prefix); }
};
}  // namespace

TEST_CASE("gradcheck catches a backward that is off by 0.1%", "[nn][gradcheck]") {
  SlightlyWrong layer;
  haze::test::deterministic_init(layer);
  Tensor x = random_input({2, 3}, 1);
  const auto report = haze::verify::gradcheck<double, Cpu>(
      layer, {&x}, [&] { return layer.forward(x); },
      [&](const Tensor& dy) {
        std::vector<Tensor> d;
        d.push_back(layer.backward(dy));
        return d;
      });
  CHECK(report.entries[0].worst > 5e-4);   // the input gradient is wrong
  CHECK(report.entries[1].worst < 1e-6);   // the weight gradient is right
}
