// Every layer and the whole UNet on backend::Device against backend::Cpu in
// float, forward and backward (verify::against_cpu). Tolerances relative to
// each tensor's scale: 1e-5 for a single layer (a few float roundings per
// output, summed in different orders by the two GEMMs), 1e-4 for the whole
// model (about thirty layers deep).
#include <haze/haze.hpp>
#include <haze/nn/cross_entropy.hpp>
#include <haze/nn/pooling.hpp>
#include <haze/nn/unet.hpp>
#include <haze/verify/against_cpu.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "../../examples/fashion_mnist/classifier.hpp"
#include "nn/deterministic_init.hpp"
#include "test_support.hpp"

using haze::backend::Cpu;
using haze::backend::Device;
namespace nn = haze::nn;

namespace {

template <class B>
using Tensor = haze::Tensor<float, B>;

void require_ok(const haze::verify::AgainstCpuReport& report) {
  std::ostringstream text;
  text << report;
  INFO(text.str());
  REQUIRE(report.ok());
}

// A one-input layer: forward(x), backward(dy) on both backends.
template <template <class, class> class Layer, class... Args>
void check_layer(haze::Shape shape, Args... args) {
  Layer<float, Device> device_layer(args...);
  Layer<float, Cpu> cpu_layer(args...);
  haze::test::deterministic_init(device_layer);
  const auto host_x = haze::test::uniform<float>(shape.numel(), 3);
  const auto run = [&](auto& layer) {
    using B = typename std::remove_reference_t<decltype(layer)>::backend_type;
    const auto x = Tensor<B>::from_host(shape, host_x);
    Tensor<B> y = layer.forward(x);
    const auto dy = Tensor<B>::from_host(y.shape(), haze::test::uniform<float>(y.numel(), 4));
    Tensor<B> dx = layer.backward(dy);
    std::vector<std::pair<std::string, Tensor<B>>> out;
    out.emplace_back("output", std::move(y));
    out.emplace_back("grad input", std::move(dx));
    return out;
  };
  require_ok(haze::verify::against_cpu(device_layer, cpu_layer, run, 1e-5));
}

}  // namespace

TEST_CASE("every layer on Device equals Cpu, forward and backward", "[device][nn]") {
  check_layer<nn::Linear>({5, 6}, 6, 4);
  check_layer<nn::Conv2d>({2, 3, 7, 6}, 3, 5, 3, 1, 1);
  check_layer<nn::Conv2d>({2, 3, 8, 7}, 3, 4, 3, 2, 1);
  check_layer<nn::Conv2d>({2, 6, 4, 5}, 6, 3, 1, 1, 0);
  check_layer<nn::GroupNorm>({2, 6, 5, 4}, 3, 6, 1e-5);
  check_layer<nn::GroupNorm>({2, 6, 5, 4}, 3, 6, 1e-5, nn::NormActivation::silu);
  check_layer<nn::SiLU>({2, 3, 4, 4});
  check_layer<nn::Attention>({2, 8, 4, 3}, 8, 4, 2, 1e-5);
  check_layer<nn::Downsample>({2, 4, 6, 6}, 4);
  check_layer<nn::Downsample>({2, 4, 6, 7}, 4, 0);
  check_layer<nn::Attention>({2, 8, 4, 3}, 8, 8, 2, 1e-5, 1.5);
  check_layer<nn::Attention>({2, 8, 4, 3}, 8, 4, 0, 1e-5);
  check_layer<nn::Upsample>({2, 4, 3, 3}, 4);
  check_layer<nn::TimestepEmbedding>({3, 16}, 16, 32);
  check_layer<nn::GlobalAvgPool>({2, 6, 5, 4});
}

TEST_CASE("softmax_cross_entropy and argmax_rows on Device equal Cpu", "[device][nn][classifier]") {
  constexpr int64_t n = 6, k = 10;
  auto host_logits = haze::test::uniform<float>(n * k, 9);
  for (auto& v : host_logits) v *= 4;
  const std::vector<int64_t> labels = {3, 0, 9, 9, 5, 1};
  // grad is prefilled with NaN: an element the kernel forgot fails the comparison.
  Tensor<Device> device_grad = Tensor<Device>::full({n, k}, haze::test::sentinel<float>());
  Tensor<Cpu> cpu_grad = Tensor<Cpu>::full({n, k}, haze::test::sentinel<float>());
  const auto device_logits = Tensor<Device>::from_host({n, k}, host_logits);
  const auto cpu_logits = Tensor<Cpu>::from_host({n, k}, host_logits);
  const double device_loss = nn::softmax_cross_entropy(device_logits, labels, device_grad);
  const double cpu_loss = nn::softmax_cross_entropy(cpu_logits, labels, cpu_grad);
  // Both sum exp in double from the same float logits, one row per call: the
  // loss agrees to double rounding (1e-12 leaves room for a different libm).
  CHECK(device_loss == Approx(cpu_loss).epsilon(1e-12));
  // Each gradient element is one double expression rounded to float: within
  // float rounding of the gradient's scale (1/N), the single-op tolerance.
  const auto comparison = haze::verify::compare(device_grad, cpu_grad, 1e-5 / n, 1e-5);
  INFO(comparison);
  CHECK(comparison.ok());
  CHECK(nn::argmax_rows(device_logits) == nn::argmax_rows(cpu_logits));
}

TEST_CASE("the Fashion-MNIST classifier on Device equals Cpu, forward and backward", "[device][nn][classifier]") {
  fashion_mnist::Classifier<float, Device> device_model;
  fashion_mnist::Classifier<float, Cpu> cpu_model;
  haze::test::deterministic_init(device_model);
  const std::vector<int64_t> labels = {7, 2};
  const auto run = [&](auto& model) {
    using B = typename std::remove_reference_t<decltype(model)>::backend_type;
    const auto x = Tensor<B>::from_host({2, 1, 32, 32}, haze::test::uniform<float>(2 * 32 * 32, 10));
    Tensor<B> logits = model.forward(x);
    Tensor<B> dlogits;
    (void)nn::softmax_cross_entropy(logits, labels, dlogits);
    Tensor<B> dx = model.backward(dlogits);
    std::vector<std::pair<std::string, Tensor<B>>> out;
    out.emplace_back("logits", std::move(logits));
    out.emplace_back("dlogits", std::move(dlogits));
    out.emplace_back("grad input", std::move(dx));
    out.emplace_back("features", model.features(x));
    return out;
  };
  require_ok(haze::verify::against_cpu(device_model, cpu_model, run, 1e-4));  // a whole model: 1e-4
}

TEST_CASE("ResBlock on Device equals Cpu, with the time-embedding gradient", "[device][nn]") {
  for (const bool scale_shift : {false, true}) {
    INFO("scale_shift " << scale_shift);
    nn::ResBlock<float, Device> device_block(4, 8, 16, 2, 1e-5, 0.0, 1.0, scale_shift);
    nn::ResBlock<float, Cpu> cpu_block(4, 8, 16, 2, 1e-5, 0.0, 1.0, scale_shift);
    haze::test::deterministic_init(device_block);
    const auto run = [&](auto& block) {
      using B = typename std::remove_reference_t<decltype(block)>::backend_type;
      const auto x = Tensor<B>::from_host({2, 4, 6, 5}, haze::test::uniform<float>(240, 5));
      const auto temb = Tensor<B>::from_host({2, 16}, haze::test::uniform<float>(32, 6));
      Tensor<B> y = block.forward(x, temb);
      Tensor<B> dx = block.backward(Tensor<B>::from_host(y.shape(), haze::test::uniform<float>(y.numel(), 7)));
      std::vector<std::pair<std::string, Tensor<B>>> out;
      out.emplace_back("output", std::move(y));
      out.emplace_back("grad input", std::move(dx));
      out.emplace_back("grad temb", block.backward_temb().clone());
      return out;
    };
    require_ok(haze::verify::against_cpu(device_block, cpu_block, run, 1e-5));
  }
}

TEST_CASE("the tiny UNet on Device equals Cpu, forward and backward", "[device][nn][unet]") {
  nn::UNetConfig config = nn::UNetConfig::tiny();
  config.num_classes = 4;
  nn::UNet<float, Device> unet(config);
  haze::test::deterministic_init(unet);
  const auto x = Tensor<Device>::from_host({2, 1, 16, 16}, haze::test::uniform<float>(512, 8));
  const std::vector<double> t = {3, 777.25};
  const std::vector<int64_t> labels = {2, 4};
  const auto report = haze::verify::against_cpu(unet, x, t, labels, 1e-4);
  // Every block's output and input gradient has a row of its own, before
  // the returned tensors and the 145 parameter gradients.
  const auto row = [&](const std::string& name) {
    for (const auto& r : report.rows)
      if (r.name == name) return true;
    return false;
  };
  CHECK(row("output time_embedding"));
  CHECK(row("output class_embedding"));
  CHECK(row("output down_blocks.1.attentions.0"));
  CHECK(row("output mid_block.attentions.0"));
  CHECK(row("output conv_out"));
  CHECK(row("input grad up_blocks.0.resnets.1"));
  CHECK(row("input grad conv_in"));
  CHECK(row("grad input"));
  require_ok(report);
}

TEST_CASE("the UNet with diffusers' options on Device equals Cpu, forward and backward", "[device][nn][unet]") {
  nn::UNetConfig config = nn::UNetConfig::tiny();
  config.num_classes = 4;
  config.flip_sin_to_cos = false;
  config.freq_shift = 1;
  config.downsample_padding = 0;
  config.attention_head_dim = 0;
  config.mid_block_scale_factor = 1.5;
  config.attn_norm_num_groups = 2;
  config.center_input_sample = true;
  nn::UNet<float, Device> unet(config);
  haze::test::deterministic_init(unet);
  const auto x = Tensor<Device>::from_host({2, 1, 16, 16}, haze::test::uniform<float>(512, 9));
  const std::vector<double> t = {3, 777.25};
  const std::vector<int64_t> labels = {2, 4};
  require_ok(haze::verify::against_cpu(unet, x, t, labels, 1e-4));
  config.mid_attention = false;
  nn::UNet<float, Device> without(config);
  haze::test::deterministic_init(without);
  require_ok(haze::verify::against_cpu(without, x, t, labels, 1e-4));
  config.mid_attention = true;
  config.attn_norm_num_groups = 0;
  config.scale_shift = true;  // ResBlocks with a scale and a shift, a mid attention without GroupNorm
  nn::UNet<float, Device> shifted(config);
  haze::test::deterministic_init(shifted);
  require_ok(haze::verify::against_cpu(shifted, x, t, labels, 1e-4));
  config.scale_shift = false;
  config.fourier_time = true;  // t as sigmas, the output divided by them
  config.class_embed_type = nn::UNetConfig::ClassEmbedType::timestep;
  nn::UNet<float, Device> score_model(config);
  haze::test::deterministic_init(score_model);
  require_ok(haze::verify::against_cpu(score_model, x, t, labels, 1e-4));
}

TEST_CASE("the UNet with class vectors (class_embed_type identity) on Device equals Cpu", "[device][nn][unet]") {
  nn::UNetConfig config = nn::UNetConfig::tiny();
  config.class_embed_type = nn::UNetConfig::ClassEmbedType::identity;
  nn::UNet<float, Device> device_unet(config);
  nn::UNet<float, Cpu> cpu_unet(config);
  haze::test::deterministic_init(device_unet);
  const std::vector<double> t = {3, 777.25};
  const auto run = [&](auto& unet) {
    using B = typename std::remove_reference_t<decltype(unet)>::backend_type;
    const auto x = Tensor<B>::from_host({2, 1, 16, 16}, haze::test::uniform<float>(512, 10));
    const auto vectors = Tensor<B>::from_host({2, 64}, haze::test::uniform<float>(128, 11));
    Tensor<B> y = unet.forward(x, t, vectors);
    const auto dy = Tensor<B>::from_host(y.shape(), haze::test::uniform<float>(y.numel(), 12));
    Tensor<B> dx = unet.backward(dy);
    std::vector<std::pair<std::string, Tensor<B>>> out;
    out.emplace_back("output", std::move(y));
    out.emplace_back("grad input", std::move(dx));
    out.emplace_back("grad class vectors", unet.class_vectors_grad().clone());
    return out;
  };
  require_ok(haze::verify::against_cpu(device_unet, cpu_unet, run, 1e-4));
}

TEST_CASE("against_cpu pins a difference to the first block that has it", "[device][nn][unet]") {
  nn::UNet<float, Device> unet(nn::UNetConfig::tiny());
  haze::test::deterministic_init(unet);
  const auto x = Tensor<Device>::from_host({2, 1, 16, 16}, haze::test::uniform<float>(512, 8));
  const std::vector<double> t = {3, 777.25};
  nn::UNet<float, Cpu> twin(unet.config());
  // The Device model's mid-block attention gets a slightly different
  // weight after the twin has copied the weights: a stand-in for a wrong kernel.
  const auto run = [&](auto& m) {
    using MB = typename std::remove_reference_t<decltype(m)>::backend_type;
    if constexpr (std::is_same_v<MB, Device>) {
      for (const auto& p : nn::parameters_of(m))
        if (p.name.starts_with("mid_block.attentions.0") && p.name.ends_with("weight")) {
          haze::ops::scale(*p.value, 1.01f);
          break;
        }
    }
    Tensor<MB> y = m.forward(x.template to<MB>(), t);
    Tensor<MB> dx = m.backward(Tensor<MB>::full(y.shape(), 0.5f));
    std::vector<std::pair<std::string, Tensor<MB>>> out;
    out.emplace_back("output", std::move(y));
    out.emplace_back("grad input", std::move(dx));
    return out;
  };
  const auto report = haze::verify::against_cpu(unet, twin, run, 1e-4);
  std::ostringstream text;
  text << report;
  INFO(text.str());
  size_t first_bad = report.rows.size();
  for (size_t i = 0; i < report.rows.size() && first_bad == report.rows.size(); ++i)
    if (!report.rows[i].comparison.ok()) first_bad = i;
  REQUIRE(first_bad < report.rows.size());
  CHECK(report.rows[first_bad].name == "output mid_block.attentions.0");
}

#if defined(HAZE_CUDNN)
// On a GPU with cuDNN, Device::convolution against its twin on the same
// card: the generic im2col + cuBLAS form that the OpenMP build tests against
// the Cpu. Tolerance 1e-5 of each tensor's largest element: both sum about
// C k k float products in different orders.
TEST_CASE("cuDNN's convolutions equal their im2col + cuBLAS twin", "[device][nn][cudnn]") {
  using haze::ops::ConvGeometry;
  for (const ConvGeometry g : {ConvGeometry{3, 9, 8, 3, 3, 1, 1}, ConvGeometry{4, 8, 7, 3, 3, 2, 1},
                               ConvGeometry{6, 4, 5, 1, 1, 1, 0}, ConvGeometry{2, 9, 8, 5, 5, 3, 2}}) {
    const int64_t n = 2, cout = 5;
    const haze::Shape xs{n, g.channels, g.height, g.width}, ws{cout, g.patch()},
        ys{n, cout, g.out_height(), g.out_width()};
    const auto x = Tensor<Device>::from_host(xs, haze::test::uniform<float>(xs.numel(), 1));
    const auto w = Tensor<Device>::from_host(ws, haze::test::uniform<float>(ws.numel(), 2));
    const auto b = Tensor<Device>::from_host({cout}, haze::test::uniform<float>(cout, 3));
    const auto dy = Tensor<Device>::from_host(ys, haze::test::uniform<float>(ys.numel(), 4));
    Tensor<Device> y(ys), y_twin(ys), dx(xs), dx_twin(xs);
    auto dw = Tensor<Device>::zeros(ws), dw_twin = Tensor<Device>::zeros(ws);
    haze::ops::conv2d_forward(x, w, b, g, y);
    haze::ops::detail::conv2d_forward_whole_batch(x, w, b, g, y_twin);
    haze::ops::conv2d_backward(x, w, dy, g, dw, dx);
    haze::ops::detail::conv2d_backward_whole_batch(x, w, dy, g, dw_twin, dx_twin);
    const auto within = [](const Tensor<Device>& a, const Tensor<Device>& twin) {
      const auto av = a.to_host(), tv = twin.to_host();
      float worst = 0, scale = 0;
      for (size_t i = 0; i < av.size(); ++i) {
        if (!std::isfinite(av[i])) return false;
        worst = std::max(worst, std::abs(av[i] - tv[i]));
        scale = std::max(scale, std::abs(tv[i]));
      }
      return worst <= 1e-5f * scale;
    };
    INFO("kernel " << g.kernel_h << ", stride " << g.stride << ", padding " << g.padding);
    CHECK(within(y, y_twin));
    CHECK(within(dw, dw_twin));
    CHECK(within(dx, dx_twin));
  }
}
#endif
