// Every layer's hand-written backward against central finite differences,
// in double on the Cpu backend (haze::verify::gradcheck). Criterion: the
// error measure of gradcheck.hpp below 1e-6 at every sampled element.
#include <haze/haze.hpp>
#include <haze/nn/activation.hpp>
#include <haze/nn/attention.hpp>
#include <haze/nn/class_embedding.hpp>
#include <haze/nn/conv2d.hpp>
#include <haze/nn/group_norm.hpp>
#include <haze/nn/linear.hpp>
#include <haze/nn/res_block.hpp>
#include <haze/nn/resample.hpp>
#include <haze/nn/timestep_embedding.hpp>
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

// gradcheck of a one-input layer at input x.
template <class Layer>
haze::verify::GradcheckReport one_input_gradcheck(Layer& layer, Tensor& x, int samples) {
  return haze::verify::gradcheck<double, Cpu>(
      layer, {&x}, [&] { return layer.forward(x); },
      [&](const Tensor& dy) {
        std::vector<Tensor> d;
        d.push_back(layer.backward(dy));
        return d;
      },
      {.samples = samples});
}

template <class Layer>
void check_layer(Layer& layer, Shape input_shape, int samples = 12) {
  haze::test::deterministic_init(layer);
  Tensor x = random_input(input_shape, 42);
  const auto report = one_input_gradcheck(layer, x, samples);
  std::ostringstream text;
  text << report;
  INFO(text.str());
  CHECK(report.worst() < 1e-6);
}

// gradcheck of a ResBlock in x and temb, with `forward` running the block.
template <class Forward>
void check_res_block(nn::ResBlock<double, Cpu>& block, Tensor& x, Tensor& temb, const Forward& forward) {
  const auto report = haze::verify::gradcheck<double, Cpu>(
      block, {&x, &temb}, forward,
      [&](const Tensor& dy) {
        std::vector<Tensor> d;
        d.push_back(block.backward(dy));
        d.push_back(block.backward_temb().clone());
        return d;
      },
      {.samples = 6});
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

TEST_CASE("GroupNorm with its fused SiLU backward matches finite differences", "[nn][gradcheck]") {
  nn::GroupNorm<double, Cpu> norm(3, 6, 1e-5, nn::NormActivation::silu);
  check_layer(norm, {2, 6, 5, 4}, 24);
}

// The fused layer against its two-layer definition, SiLU(GroupNorm(x)),
// bit for bit: the fused passes compute the same expressions in the same
// order (the SiLU's argument is the same PlaneAffine, its sums the same
// lane sums), and GroupNorm's output rounded to T is what SiLU reads.
TEMPLATE_TEST_CASE("GroupNorm's fused SiLU equals GroupNorm then SiLU, forward and backward", "[nn]", float,
                   double) {
  using T = TestType;
  using TensorT = haze::Tensor<T, Cpu>;
  nn::GroupNorm<T, Cpu> fused(4, 8, 1e-5, nn::NormActivation::silu), norm(4, 8);
  nn::SiLU<T, Cpu> silu;
  haze::test::deterministic_init(fused);
  haze::test::deterministic_init(norm);
  const haze::Shape shape{3, 8, 6, 5};
  auto host_x = haze::test::uniform<T>(shape.numel(), 7);
  for (auto& v : host_x) v = v * T(3) + T(0.5);  // mean away from 0, values where SiLU bends
  const TensorT x = TensorT::from_host(shape, host_x);
  const TensorT dy = TensorT::from_host(shape, haze::test::uniform<T>(shape.numel(), 8));
  CHECK(fused.forward(x).to_host() == silu.forward(norm.forward(x)).to_host());
  CHECK(fused.infer(x).to_host() == silu.infer(norm.infer(x)).to_host());
  CHECK(fused.backward(dy).to_host() == norm.backward(silu.backward(dy)).to_host());
  haze::nn::Parameters<T, Cpu> fused_params, norm_params;
  fused.parameters(fused_params, "n");
  norm.parameters(norm_params, "n");
  REQUIRE(fused_params.size() == norm_params.size());
  for (size_t i = 0; i < fused_params.size(); ++i) CHECK(fused_params[i].grad->to_host() == norm_params[i].grad->to_host());
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
  const auto report = one_input_gradcheck(layer, x, 8);
  CHECK(report.entries[0].worst > 5e-4);   // the input gradient is wrong
  CHECK(report.entries[1].worst < 1e-6);   // the weight gradient is right
}

TEST_CASE("Attention backward matches finite differences", "[nn][gradcheck]") {
  nn::Attention<double, Cpu> attention(8, 4, 2);  // two heads
  check_layer(attention, {2, 8, 4, 3}, 16);
  nn::Attention<double, Cpu> scaled(8, 8, 2, 1e-5, 1.5);  // one head, output / 1.5 (a mid block's)
  check_layer(scaled, {2, 8, 4, 3}, 16);
  nn::Attention<double, Cpu> unnormed(8, 4, 0);  // no GroupNorm (a scale_shift mid block's)
  check_layer(unnormed, {2, 8, 4, 3}, 16);
}

TEST_CASE("Downsample and Upsample backward match finite differences", "[nn][gradcheck]") {
  nn::Downsample<double, Cpu> down(4);
  check_layer(down, {2, 4, 6, 5});
  nn::Downsample<double, Cpu> right_bottom(4, 0);  // diffusers' downsample_padding 0
  check_layer(right_bottom, {2, 4, 6, 5});
  nn::Upsample<double, Cpu> up(4);
  check_layer(up, {2, 4, 3, 3});
}

TEST_CASE("TimestepEmbedding backward matches finite differences", "[nn][gradcheck]") {
  nn::TimestepEmbedding<double, Cpu> embedding(16, 32);
  check_layer(embedding, {3, 16});
}

TEST_CASE("ResBlock backward matches finite differences, time embedding included", "[nn][gradcheck]") {
  // identity shortcut, a 1x1 conv shortcut, and a mid block's output scale
  // and the "scale_shift" time embedding
  struct Case {
    int64_t out_channels;
    double output_scale;
    bool scale_shift;
  };
  for (const Case& c : {Case{4, 1, false}, Case{8, 1, false}, Case{4, 1.5, false}, Case{4, 1, true}, Case{8, 1, true}}) {
    CAPTURE(c.out_channels, c.output_scale, c.scale_shift);
    const int64_t out_channels = c.out_channels;
    nn::ResBlock<double, Cpu> block(4, out_channels, 16, 2, 1e-5, 0.0, c.output_scale, c.scale_shift);
    haze::test::deterministic_init(block);
    Tensor x = random_input({2, 4, 6, 5}, 1), temb = random_input({2, 16}, 2);
    check_res_block(block, x, temb, [&] { return block.forward(x, temb); });
  }
}

TEST_CASE("ResBlock backward with dropout matches finite differences through a fixed mask", "[nn][gradcheck][dropout]") {
  // Every forward draws its mask from a fresh Generator{9}, so the mask is
  // the same at every perturbed point and the block is a smooth function
  // of x and temb: backward must route dy through that mask and its scale.
  nn::ResBlock<double, Cpu> block(4, 8, 16, 2, 1e-5, 0.3);
  haze::test::deterministic_init(block);
  Tensor x = random_input({2, 4, 6, 5}, 1), temb = random_input({2, 16}, 2);
  const auto forward = [&] {
    haze::Generator gen{9};
    return block.forward(x, temb, &gen);
  };
  REQUIRE(block.infer(x, temb).to_host() != forward().to_host());  // the mask is on
  check_res_block(block, x, temb, forward);
}

TEST_CASE("Dropout masks keep a fraction 1 - p of the elements, scaled by 1 / (1 - p)", "[nn][dropout]") {
  // n = 2^16 draws per p: the kept fraction has standard deviation
  // sqrt(p (1 - p) / n) <= 0.002, so 0.01 is five of them, and the mean's
  // is that over (1 - p); a mask that kept p instead of 1 - p (p != 0.5)
  // misses the fraction by >= 0.4, one without the scale the mean by p >= 0.1.
  const int64_t n = int64_t(1) << 16;
  for (double p : {0.1, 0.3, 0.5}) {
    CAPTURE(p);
    haze::Tensor<float, Cpu> mask({n});
    haze::ops::map_index(mask, nn::detail::DropoutMask<float>{7, 0, p, 0});
    const auto values = mask.to_host();
    int64_t kept = 0;
    double sum = 0;
    for (float v : values) {
      REQUIRE((v == 0.0f || v == float(1 / (1 - p))));
      kept += v != 0;
      sum += v;
    }
    CHECK(double(kept) / double(n) == Approx(1 - p).margin(0.01));
    CHECK(sum / double(n) == Approx(1).margin(0.01 / (1 - p)));  // the scale keeps the mean at 1
  }
}

TEST_CASE("ResBlock dropout masks are reproducible and scaled", "[nn][dropout]") {
  nn::ResBlock<double, Cpu> block(4, 4, 8, 2, 1e-5, 0.5);
  haze::test::deterministic_init(block);
  const Tensor x = random_input({2, 4, 4, 4}, 3), temb = random_input({2, 8}, 4);
  haze::Generator g1{9}, g2{9}, g3{10};
  const auto a = block.forward(x, temb, &g1).to_host();
  const auto b = block.forward(x, temb, &g2).to_host();
  const auto c = block.forward(x, temb, &g3).to_host();
  CHECK(a == b);
  CHECK(a != c);
  CHECK(g1.offset == 2 * 4 * 4 * 4 / 4);
  const auto plain = block.infer(x, temb).to_host();  // no generator: no dropout
  CHECK(plain != a);
  // A share of a batch (images [1, 2) of 2) draws the whole batch's mask
  // for its images and moves the generator past the whole batch's.
  haze::Generator g4{9};
  Tensor second({1, 4, 4, 4});
  haze::backend::Cpu::copy(second.data(), x.data() + 64, 64);
  Tensor second_temb({1, 8});
  haze::backend::Cpu::copy(second_temb.data(), temb.data() + 8, 8);
  const auto share = block.forward(second, second_temb, &g4, {.first = 1, .batch = 2}).to_host();
  CHECK(g4.offset == g1.offset);
  const std::vector<double> a_second(a.begin() + 64, a.end());
  // The same arithmetic on a one-image batch; 1e-12 allows a product
  // blocked for one image instead of two, a wrong mask is off by O(1).
  for (size_t i = 0; i < share.size(); ++i) CHECK(share[i] == Approx(a_second[i]).margin(1e-12));
  CHECK_THROWS_WITH(block.forward(second, second_temb, &g4, {.first = 2, .batch = 2}),
                    mentions("share of 1 images from 2 lies outside a batch of 2"));
  CHECK_THROWS_WITH((nn::ResBlock<double, Cpu>(4, 4, 8, 2, 1e-5, 1.0)), mentions("dropout must be in [0, 1)"));
}

TEST_CASE("ClassEmbedding gathers rows and scatters gradients", "[nn]") {
  nn::ClassEmbedding<double, Cpu> table(3, 2);  // 3 classes + null
  haze::test::deterministic_init(table);
  const std::vector<int64_t> labels = {2, 0, 2, 3};
  const auto y = table.forward(labels).to_host();
  const auto w = nn::parameters_of(table)[0].value->to_host();
  for (int n = 0; n < 4; ++n)
    for (int j = 0; j < 2; ++j) CHECK(y[n * 2 + j] == w[labels[n] * 2 + j]);
  table.backward(Tensor::from_host({4, 2}, std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8}));
  CHECK(nn::parameters_of(table)[0].grad->to_host() == std::vector<double>{3, 4, 0, 0, 6, 8, 7, 8});
  CHECK_THROWS_WITH(table.forward(std::vector<int64_t>{4}), mentions("label 4 of sample 0 is outside [0, 3]"));
  CHECK_THROWS_WITH(table.forward(std::vector<int64_t>{-1}), mentions("label -1"));
  CHECK_THROWS_WITH(table.backward(Tensor::zeros({4, 2})), mentions("without a matching forward"));
}

TEST_CASE("the sinusoidal embedding is [cos, sin] over geometric frequencies", "[nn]") {
  const std::vector<double> ts = {0.0, 7.5};
  const auto e = nn::sinusoidal_embedding<double, Cpu>(ts, 4).to_host();  // half = 2: f = 1, 0.01
  const std::vector<double> expected = {1, 1, 0, 0, std::cos(7.5), std::cos(0.075), std::sin(7.5), std::sin(0.075)};
  for (size_t i = 0; i < e.size(); ++i) CHECK(e[i] == Approx(expected[i]).epsilon(1e-15).margin(1e-15));
  CHECK_THROWS_WITH((nn::sinusoidal_embedding<double, Cpu>(ts, 3)), mentions("dim must be even"));
  CHECK_THROWS_WITH((nn::Attention<double, Cpu>(8, 3, 2)), mentions("attention_head_dim 3 does not divide 8 channels"));
}
