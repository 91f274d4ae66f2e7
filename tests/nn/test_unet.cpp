// The whole UNet: diffusers' parameter names, PyTorch golden numbers for the
// tiny config, a finite-difference check of every parameter tensor, and bad input.
#include <haze/haze.hpp>
#include <haze/nn/unet.hpp>
#include <haze/verify/gradcheck.hpp>

#if defined(_OPENMP)
#include <omp.h>
#endif

#include <set>
#include <sstream>

#include "nn/deterministic_init.hpp"
#include "nn/golden_file.hpp"

using haze::backend::Cpu;
using haze::test::mentions;
namespace nn = haze::nn;

namespace {
nn::UNetConfig tiny_conditional() {
  nn::UNetConfig c = nn::UNetConfig::tiny();
  c.num_classes = 4;  // + the null class 4, as in tests/golden/nn/unet_tiny.txt
  return c;
}

// The tiny config with every diffusers option that changes the arithmetic
// set away from its default (mid_attention false is its own case).
nn::UNetConfig tiny_with_diffusers_options(bool mid_attention) {
  nn::UNetConfig c = tiny_conditional();
  c.flip_sin_to_cos = false;
  c.freq_shift = 1;
  c.downsample_padding = 0;
  c.attention_head_dim = 0;  // one head per block
  c.mid_block_scale_factor = 1.5;
  c.attn_norm_num_groups = 2;
  c.center_input_sample = true;
  c.mid_attention = mid_attention;
  return c;
}

// A batch of five 16 x 16 inputs for `config`, with timesteps and (for a
// class-conditional model) labels: five images split unevenly on 2 and 3
// threads and into training's two shares.
template <class T>
struct FiveImages {
  haze::Tensor<T, Cpu> x;
  std::vector<double> t = {3, 999, 0.5, 250, 41};
  std::vector<int64_t> labels;
};

template <class T>
FiveImages<T> five_images(const nn::UNetConfig& config, uint64_t seed) {
  const int64_t n = 5, c = config.in_channels;
  FiveImages<T> batch;
  batch.x = haze::Tensor<T, Cpu>::from_host({n, c, 16, 16}, haze::test::uniform<T>(n * c * 256, seed));
  if (config.num_classes > 0) batch.labels = {0, 4, 2, 1, 3};
  return batch;
}
}  // namespace

TEST_CASE("UNet parameters carry diffusers' state_dict names and shapes", "[nn][unet]") {
  nn::UNet<float, Cpu> unet(tiny_conditional());
  // Every "# param <name> <dims>" line of the golden file, from PyTorch's state_dict.
  std::ifstream file(HAZE_GOLDEN_DIR "/nn/unet_tiny.txt");
  std::map<std::string, std::vector<int64_t>> expected;
  for (std::string line; std::getline(file, line);) {
    if (line.rfind("# param ", 0) != 0) continue;
    std::istringstream in(line.substr(8));
    std::string name;
    in >> name;
    std::vector<int64_t> dims;
    for (int64_t d; in >> d;) dims.push_back(d);
    expected[name] = dims;
  }
  REQUIRE(expected.size() == 145);
  const auto params = nn::parameters_of(unet);
  std::set<std::string> seen;
  int64_t count = 0;
  for (const auto& p : params) {
    INFO(p.name);
    REQUIRE(expected.contains(p.name));
    std::vector<int64_t> dims;
    for (int a = 0; a < p.value->rank(); ++a) dims.push_back(p.value->dim(a));
    CHECK(dims == expected[p.name]);
    seen.insert(p.name);
    count += p.value->numel();
  }
  CHECK(seen.size() == expected.size());
  CHECK(count == 177169);
}

TEMPLATE_TEST_CASE("the tiny UNet matches PyTorch (diffusers' UNet2DModel semantics)", "[nn][unet][golden]", float,
                   double) {
  using T = TestType;
  // double: 1e-10 of each tensor's scale; float: 1e-4 (the whole-model bar).
  const double tol = std::is_same_v<T, double> ? 1e-10 : 1e-4;
  const haze::test::GoldenFile golden("unet_tiny");
  nn::UNet<T, Cpu> unet(tiny_conditional());
  haze::test::deterministic_init(unet);
  for (auto& p : nn::parameters_of(unet)) golden.check("param." + p.name, *p.value, 1e-15 + (std::is_same_v<T, float> ? 1e-7 : 0));
  const auto x = golden.tensor<T, Cpu>("input.x");
  const std::vector<double> t = golden.values("input.t");
  std::vector<int64_t> labels;
  for (double v : golden.values("input.labels")) labels.push_back(static_cast<int64_t>(v));
  const auto y = unet.forward(x, t, labels);
  golden.check("output.y", y, tol);
  golden.check("grad.input.x", unet.backward(golden.tensor<T, Cpu>("input.dy")), tol);
  for (auto& p : nn::parameters_of(unet)) golden.check("grad." + p.name, *p.grad, tol);
  // infer gives forward's output and caches nothing.
  const auto again = unet.infer(x, t, labels);
  CHECK(haze::verify::compare(again, y, 0, 0).ok());
  CHECK_THROWS_WITH(unet.backward(golden.tensor<T, Cpu>("input.dy")), mentions("UNet::backward called without a matching forward"));
}

// A finite-difference check of the UNet's input and every parameter tensor
// on x [2, 1, 16, 16], t = {10, 500.5}, labels {1, 4}; returns how many
// tensors it checked, after checking the worst relative error.
static size_t check_unet_gradients(nn::UNet<double, Cpu>& unet, haze::Tensor<double, Cpu> x) {
  const std::vector<double> t = {10, 500.5};
  const std::vector<int64_t> labels = {1, 4};
  const auto report = haze::verify::gradcheck<double, Cpu>(
      unet, {&x}, [&] { return unet.forward(x, t, labels); },
      [&](const haze::Tensor<double, Cpu>& dy) {
        std::vector<haze::Tensor<double, Cpu>> d;
        d.push_back(unet.backward(dy));
        return d;
      },
      // h = 1e-4: the loss sums 512 outputs (|L| ~ 30), so the difference
      // quotient's rounding noise eps |L| / h is ~6e-11 against a
      // truncation error of ~h^2 |L'''| / 6 ~ 1e-9 at most.
      {.samples = 2, .step = 1e-4});
  std::ostringstream text;
  text << report;
  INFO(text.str());
  CHECK(report.worst() < 1e-6);
  return report.entries.size();
}

TEST_CASE("the tiny UNet's backward matches finite differences for the input and every parameter tensor",
          "[nn][unet][gradcheck]") {
  nn::UNet<double, Cpu> unet(tiny_conditional());
  haze::test::deterministic_init(unet);
  const haze::test::GoldenFile golden("unet_tiny");
  CHECK(check_unet_gradients(unet, golden.tensor<double, Cpu>("input.x")) == 146);  // the input and 145 parameters
}

TEST_CASE("the UNet's backward matches finite differences with diffusers' options", "[nn][unet][gradcheck]") {
  for (const bool mid_attention : {true, false}) {
    INFO("mid_attention " << mid_attention);
    nn::UNet<double, Cpu> unet(tiny_with_diffusers_options(mid_attention));
    haze::test::deterministic_init(unet);
    const auto x = haze::Tensor<double, Cpu>::from_host({2, 1, 16, 16}, haze::test::uniform<double>(512, 77));
    CHECK(check_unet_gradients(unet, x.clone()) == (mid_attention ? 146u : 136u));  // the mid attention has 10 tensors
  }
  // scale_shift: each ResBlock's projection gives a scale and a shift, and
  // the mid attention has no GroupNorm (2 tensors fewer).
  nn::UNetConfig shift = tiny_conditional();
  shift.scale_shift = true;
  nn::UNet<double, Cpu> unet(shift);
  haze::test::deterministic_init(unet);
  const auto x = haze::Tensor<double, Cpu>::from_host({2, 1, 16, 16}, haze::test::uniform<double>(512, 78));
  CHECK(check_unet_gradients(unet, x.clone()) == 144u);
}

TEST_CASE("the UNet's backward matches finite differences with a Fourier time projection and a timestep class "
          "embedding", "[nn][unet][gradcheck]") {
  nn::UNetConfig config = tiny_conditional();
  config.fourier_time = true;  // t = 10 and 500.5 are the sigmas; the output is divided by them
  config.class_embed_type = nn::UNetConfig::ClassEmbedType::timestep;
  nn::UNet<double, Cpu> unet(config);
  haze::test::deterministic_init(unet);
  const auto x = haze::Tensor<double, Cpu>::from_host({2, 1, 16, 16}, haze::test::uniform<double>(512, 79));
  // the frozen frequencies are not probed: 144 tensors, the class table
  // replaced by the class MLP's 4, and the input
  CHECK(check_unet_gradients(unet, x.clone()) == 149u);
  const auto params = nn::parameters_of(unet);
  REQUIRE(params[2].name == "time_proj.weight");  // after conv_in's two, as in diffusers
  CHECK(params[2].kind == nn::ParamKind::Frozen);
  const std::vector<double> frozen_grad = params[2].grad->to_host();  // backward adds no gradient to it
  CHECK(std::all_of(frozen_grad.begin(), frozen_grad.end(), [](double g) { return g == 0; }));
}

TEST_CASE("the UNet's backward matches finite differences for class vectors (class_embed_type identity)",
          "[nn][unet][gradcheck]") {
  nn::UNetConfig config = nn::UNetConfig::tiny();
  config.class_embed_type = nn::UNetConfig::ClassEmbedType::identity;
  nn::UNet<double, Cpu> unet(config);
  haze::test::deterministic_init(unet);
  auto x = haze::Tensor<double, Cpu>::from_host({2, 1, 16, 16}, haze::test::uniform<double>(512, 80));
  auto vectors = haze::Tensor<double, Cpu>::from_host({2, 64}, haze::test::uniform<double>(128, 81));
  const std::vector<double> t = {10, 500.5};
  const auto report = haze::verify::gradcheck<double, Cpu>(
      unet, {&x, &vectors}, [&] { return unet.forward(x, t, vectors); },
      [&](const haze::Tensor<double, Cpu>& dy) {
        std::vector<haze::Tensor<double, Cpu>> d;
        d.push_back(unet.backward(dy));
        d.push_back(unet.class_vectors_grad().clone());
        return d;
      },
      {.samples = 2, .step = 1e-4});  // h as in check_unet_gradients
  std::ostringstream text;
  text << report;
  INFO(text.str());
  CHECK(report.worst() < 1e-6);
  CHECK(report.entries.size() == 146u);  // x, the vectors and 144 parameters
  // The class vectors are required, and only for this model.
  const std::vector<int64_t> labels = {0, 1};
  CHECK_THROWS_WITH(unet.forward(x, t), mentions("class_embed_type is identity: pass class vectors [2, 64]"));
  CHECK_THROWS_WITH(unet.forward(x, t, haze::Tensor<double, Cpu>::zeros({2, 63})),
                    mentions("class vectors [2, 63] should be [2, 64]"));
  nn::UNet<double, Cpu> plain(nn::UNetConfig::tiny());
  CHECK_THROWS_WITH(plain.forward(x, t, vectors), mentions("class vectors given to a model whose class_embed_type is not identity"));
}

TEST_CASE("UNet rejects bad configurations and inputs", "[nn][unet][errors]") {
  using Tensor = haze::Tensor<float, Cpu>;
  nn::UNetConfig bad = nn::UNetConfig::tiny();
  bad.norm_groups = 5;
  CHECK_THROWS_WITH((nn::UNet<float, Cpu>(bad)), mentions("norm_groups 5 does not divide block_out_channels entry 16"));
  bad = nn::UNetConfig::tiny();
  bad.attention_head_dim = 12;
  CHECK_THROWS_WITH((nn::UNet<float, Cpu>(bad)), mentions("attention_head_dim 12 does not divide"));
  bad = nn::UNetConfig::tiny();
  bad.attention_levels = {2};
  CHECK_THROWS_WITH((nn::UNet<float, Cpu>(bad)), mentions("attention level 2 outside [0, 2)"));

  nn::UNet<float, Cpu> unet(tiny_conditional());
  const std::vector<double> t = {1, 2};
  const std::vector<int64_t> labels = {0, 1};
  CHECK_THROWS_WITH(unet.forward(Tensor::zeros({2, 3, 16, 16}), t, labels), mentions("expects input [N, 1, H, W], got [2, 3, 16, 16]"));
  CHECK_THROWS_WITH(unet.forward(Tensor::zeros({2, 1, 15, 16}), t, labels), mentions("spatial size 15x16 is not divisible by 2^(levels - 1) = 2"));
  CHECK_THROWS_WITH(unet.forward(Tensor::zeros({2, 1, 16, 16}), std::vector<double>{1}, labels), mentions("1 timesteps for a batch of 2"));
  CHECK_THROWS_WITH(unet.forward(Tensor::zeros({2, 1, 16, 16}), t, std::vector<int64_t>{0}), mentions("needs 2 labels, got 1"));
  CHECK_THROWS_WITH(unet.forward(Tensor::zeros({2, 1, 16, 16}), t, std::vector<int64_t>{0, 7}), mentions("label 7 of sample 1 is outside [0, 4]"));
  CHECK_THROWS_WITH(unet.backward(Tensor::zeros({2, 1, 16, 16})), mentions("UNet::backward called without a matching forward"));
  (void)unet.forward(Tensor::zeros({2, 1, 16, 16}), t, labels);
  CHECK_THROWS_WITH(unet.backward(Tensor::zeros({3, 1, 16, 16})), mentions("dy [3, 1, 16, 16] does not match the forward output"));
  nn::UNetConfig fourier = tiny_conditional();
  fourier.fourier_time = true;
  fourier.class_embed_type = nn::UNetConfig::ClassEmbedType::timestep;
  nn::UNet<float, Cpu> score_model(fourier);
  CHECK_THROWS_WITH(score_model.forward(Tensor::zeros({2, 1, 16, 16}), std::vector<double>{1, 0}, std::vector<int64_t>{1, 2}),
                    mentions("timestep 0 of sample 1 is not finite and > 0"));
  CHECK_THROWS_WITH(score_model.forward(Tensor::zeros({2, 1, 16, 16}), t, labels),
                    mentions("label 0 of sample 0 is outside [1, 4] (class_embed_type timestep, whose Fourier projection takes the label's log)"));
  fourier.num_classes = 0;
  CHECK_THROWS_WITH((nn::UNet<float, Cpu>(fourier)), mentions("class_embed_type timestep needs num_classes > 0"));
  fourier.class_embed_type = nn::UNetConfig::ClassEmbedType::identity;
  fourier.num_classes = 3;
  CHECK_THROWS_WITH((nn::UNet<float, Cpu>(fourier)), mentions("class_embed_type identity takes class vectors, not labels"));
  nn::UNet<float, Cpu> unconditional(nn::UNetConfig::tiny());
  CHECK_THROWS_WITH(unconditional.forward(Tensor::zeros({2, 1, 16, 16}), t, labels), mentions("labels given to an unconditional model"));
}

TEST_CASE("a second training step allocates nothing new", "[nn][unet][memory]") {
  nn::UNet<float, Cpu> unet(nn::UNetConfig::tiny());
  haze::test::deterministic_init(unet);
  using Tensor = haze::Tensor<float, Cpu>;
  const auto x = Tensor::from_host({4, 1, 16, 16}, haze::test::uniform<float>(1024, 1));
  const auto dy = Tensor::from_host({4, 1, 16, 16}, haze::test::uniform<float>(1024, 2));
  const std::vector<double> t = {1, 10, 100, 999};
  auto& stats = haze::backend::memory_stats<Cpu>();
  const auto step = [&] {
    const int64_t requests = stats.allocations.load(), fresh = stats.fresh_allocations.load();
    nn::zero_grad(unet);
    (void)unet.forward(x, t);
    (void)unet.backward(dy);
    return std::pair{stats.allocations.load() - requests, stats.fresh_allocations.load() - fresh};
  };
#if defined(_OPENMP)
  // On one thread the order of requests is fixed. (Several threads run the
  // shares at once, and their requests interleave by timing: see below.)
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
#endif
  const auto first = step(), second = step(), third = step();
  INFO("tensors (fresh from the system) per step: " << first.first << " (" << first.second << "), " << second.first
                                                   << " (" << second.second << "), " << third.first << " ("
                                                   << third.second << ")");
  CHECK(second.first <= first.first);  // the first step also sizes the im2col workspaces
  CHECK(second.second <= first.second);
  CHECK(third.first == second.first);  // from then on the same tensors every step,
  CHECK(third.second == 0);            // all served from freed blocks
#if defined(_OPENMP)
  omp_set_num_threads(std::max(saved, 2));
  // With the shares on two threads at once, a block one thread frees may
  // come back later than the other asks for its size, so now and then a
  // step takes a tensor or two fresh (0-2 seen in 2290). A cache that
  // stopped serving freed blocks would take thousands.
  (void)step();
  int64_t requests = 0, fresh = 0;
  for (int i = 0; i < 8; ++i) {
    const auto [r, f] = step();
    requests += r;
    fresh += f;
  }
  omp_set_num_threads(saved);
  INFO("over 8 steps on 2 threads: " << requests << " tensors, " << fresh << " fresh");
  CHECK(fresh * 100 <= requests);
#endif
}

TEMPLATE_TEST_CASE("UNet training in shares is image-by-image training, summed in order", "[nn][unet]", float, double) {
  // forward splits a batch of 2 into training_shares(2) = 2 shares of one
  // image, each on its own replica, and backward adds the second
  // replica's gradients to the first's. So the outputs are two one-image
  // forward passes', and each gradient is g_0 + g_1, where g_i is image
  // i's own backward from zero; the bits must agree exactly.
  using Tensor = haze::Tensor<TestType, Cpu>;
  REQUIRE(nn::UNet<TestType, Cpu>::training_shares(1) == 1);
  REQUIRE(nn::UNet<TestType, Cpu>::training_shares(2) == 2);
  nn::UNet<TestType, Cpu> unet(tiny_conditional());
  haze::test::deterministic_init(unet);
  const int64_t n = 2, size = 256;
  const auto xs = haze::test::uniform<TestType>(n * size, 3), dys = haze::test::uniform<TestType>(n * size, 4);
  const std::vector<double> t = {3, 999};
  const std::vector<int64_t> labels = {4, 2};
  const auto grads = [&] {
    std::vector<std::vector<TestType>> out;
    for (auto& p : nn::parameters_of(unet)) out.push_back(p.grad->to_host());
    return out;
  };
  nn::zero_grad(unet);
  const auto y = unet.forward(Tensor::from_host({n, 1, 16, 16}, xs), t, labels).to_host();
  const auto dx = unet.backward(Tensor::from_host({n, 1, 16, 16}, dys)).to_host();
  const auto batch_grads = grads();

  std::vector<TestType> y_each, dx_each;
  std::vector<std::vector<TestType>> summed;
  for (int64_t i = 0; i < n; ++i) {
    const auto image = [&](const std::vector<TestType>& all) {
      return Tensor::from_host({1, 1, 16, 16}, std::vector<TestType>(all.begin() + i * size, all.begin() + (i + 1) * size));
    };
    nn::zero_grad(unet);
    const auto yi = unet.forward(image(xs), std::span(t).subspan(i, 1), std::span(labels).subspan(i, 1)).to_host();
    const auto dxi = unet.backward(image(dys)).to_host();
    y_each.insert(y_each.end(), yi.begin(), yi.end());
    dx_each.insert(dx_each.end(), dxi.begin(), dxi.end());
    const auto gi = grads();
    if (i == 0) summed = gi;
    for (size_t p = 0; i > 0 && p < gi.size(); ++p)
      for (size_t e = 0; e < gi[p].size(); ++e) summed[p][e] += gi[p][e];
  }
  CHECK(y == y_each);
  CHECK(dx == dx_each);
  CHECK(batch_grads == summed);
}

#if defined(_OPENMP)
TEMPLATE_TEST_CASE("UNet forward and backward give the same bits on any thread count", "[nn][unet][threads]", float,
                   double) {
  // Training runs a batch in training_shares(N) shares (two here, of 2
  // and 3 images), fixed by N alone, and adds the replicas' gradients in
  // share order: one thread runs both, two or three threads one each (the
  // third idle), four two each. Dropout is on: each share draws its
  // images' part of the whole batch's masks.
  for (nn::UNetConfig config : {nn::UNetConfig::small(), tiny_conditional()}) {
    CAPTURE(config.block_out_channels);
    config.dropout = 0.1;
    nn::UNet<TestType, Cpu> unet(config);
    haze::test::deterministic_init(unet);
    const auto in = five_images<TestType>(config, 7);
    const auto dy = five_images<TestType>(config, 8).x;
    const int saved = omp_get_max_threads();
    const auto train_on = [&](int threads) {
      omp_set_num_threads(threads);
      nn::zero_grad(unet);
      haze::Generator gen{11, 3};
      std::vector<std::vector<TestType>> out{unet.forward(in.x, in.t, in.labels, &gen).to_host(),
                                             unet.backward(dy).to_host()};
      for (auto& p : nn::parameters_of(unet)) out.push_back(p.grad->to_host());
      omp_set_num_threads(saved);
      return std::pair{out, gen.offset};
    };
    const auto reference = train_on(1);
    CHECK(train_on(2) == reference);
    CHECK(train_on(3) == reference);
    CHECK(train_on(4) == reference);
  }
}

TEMPLATE_TEST_CASE("UNet::infer in batch shares gives forward's bits on any thread count", "[nn][unet][threads]",
                   float, double) {
  // infer runs each thread's share of the batch as a one-thread program
  // (Cpu::in_batch_shares), forward its two fixed shares (where a
  // product's bits follow its extent, infer takes those shares too). They
  // agree only if no op mixes images or depends on the thread count. Batch
  // 5 splits unevenly on 2 and 3 threads, and on 1 thread runs as two
  // shares one after the other (at most 4 images each, inference_shares); the
  // 16 x 16 input with 32 channels takes the direct convolution, the 8 x 8
  // level the banded one, the stride-2 Downsample the GEMM.
  using Tensor = haze::Tensor<TestType, Cpu>;
  for (nn::UNetConfig config : {nn::UNetConfig::small(), tiny_conditional()}) {
    CAPTURE(config.block_out_channels);
    nn::UNet<TestType, Cpu> unet(config);
    haze::test::deterministic_init(unet);
    const auto [x, t, labels] = five_images<TestType>(config, 7);
    const int saved = omp_get_max_threads();
    const auto infer_on = [&](int threads) {
      omp_set_num_threads(threads);
      const auto y = unet.infer(x, t, labels).to_host();
      omp_set_num_threads(saved);
      return y;
    };
    const auto reference = unet.forward(x, t, labels).to_host();
    CHECK(infer_on(1) == reference);
    CHECK(infer_on(2) == reference);
    CHECK(infer_on(3) == reference);
    CHECK(infer_on(4) == reference);
    CHECK(omp_get_max_threads() == saved);
    // infer between forward and backward leaves forward's caches in place.
    unet.forward(x, t, labels);
    infer_on(2);
    CHECK_NOTHROW(unet.backward(Tensor::zeros(x.shape())));
  }
}
#endif
