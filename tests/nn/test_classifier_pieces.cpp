// The pieces of the Fashion-MNIST classifier (examples/fashion_mnist): global
// average pooling, softmax cross-entropy, argmax and the whole Classifier, in
// double on the Cpu backend. Gradients against central finite differences
// with the error measure of verify/gradcheck.hpp, below 1e-6 (DESIGN.md's
// criterion for every layer and model).
#include <haze/haze.hpp>
#include <haze/nn/cross_entropy.hpp>
#include <haze/nn/pooling.hpp>
#include <haze/verify/gradcheck.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "../../examples/fashion_mnist/classifier.hpp"
#include "nn/deterministic_init.hpp"
#include "test_support.hpp"

using haze::Shape;
using haze::backend::Cpu;
using haze::test::mentions;
namespace nn = haze::nn;
using Tensor = haze::Tensor<double, Cpu>;
using Classifier = fashion_mnist::Classifier<double, Cpu>;

namespace {

Tensor random_input(Shape shape, uint64_t seed, double scale = 1) {
  auto v = haze::test::uniform<double>(shape.numel(), seed);
  for (auto& x : v) x *= scale;
  return Tensor::from_host(shape, v);
}

template <class Model>
haze::verify::GradcheckReport one_input_gradcheck(Model& model, Tensor& x, int samples) {
  return haze::verify::gradcheck<double, Cpu>(
      model, {&x}, [&] { return model.forward(x); },
      [&](const Tensor& dy) {
        std::vector<Tensor> d;
        d.push_back(model.backward(dy));
        return d;
      },
      {.samples = samples});
}

void require_small(const haze::verify::GradcheckReport& report) {
  std::ostringstream text;
  text << report;
  INFO(text.str());
  CHECK(report.worst() < 1e-6);
}

}  // namespace

TEST_CASE("GlobalAvgPool averages each plane and spreads the gradient back", "[nn][classifier][gradcheck]") {
  nn::GlobalAvgPool<double, Cpu> pool;
  Tensor x = random_input({2, 3, 5, 4}, 42);
  const auto xs = x.to_host();
  const auto y = pool.infer(x);
  REQUIRE(y.shape() == (Shape{2, 3}));
  const auto ys = y.to_host();
  for (int nc = 0; nc < 6; ++nc) {
    double sum = 0;
    for (int i = 0; i < 20; ++i) sum += xs[nc * 20 + i];
    CHECK(ys[nc] == Approx(sum / 20).epsilon(1e-14));  // a 20-term sum: rounding ~1e-15
  }
  // Every element of x gets checked (samples >= numel): the spread is exact.
  require_small(one_input_gradcheck(pool, x, 120));
  nn::Parameters<double, Cpu> params;
  pool.parameters(params, "pool");
  CHECK(params.empty());
}

TEST_CASE("softmax_cross_entropy: loss, and its gradient against finite differences", "[nn][classifier][gradcheck]") {
  constexpr int64_t n = 4, k = 5;
  const std::vector<int64_t> labels = {2, 0, 4, 2};
  std::vector<double> s = haze::test::uniform<double>(n * k, 7);
  for (auto& v : s) v *= 3;
  Tensor grad;  // allocated by the call
  const double loss = nn::softmax_cross_entropy(Tensor::from_host({n, k}, s), labels, grad);
  REQUIRE(grad.shape() == (Shape{n, k}));

  // The loss from its definition: mean of -log(exp(s_label) / sum exp(s)).
  double expected = 0;
  for (int64_t r = 0; r < n; ++r) {
    double total = 0;
    for (int64_t j = 0; j < k; ++j) total += std::exp(s[r * k + j]);
    expected += -std::log(std::exp(s[r * k + labels[r]]) / total);
  }
  CHECK(loss == Approx(expected / n).epsilon(1e-13));  // two ways of rounding ~10 terms

  // dL/ds against central differences of the returned loss at every element.
  // h = 1e-5: truncation ~h^2 |L'''| ~ 1e-10, rounding ~1e-16 |L| / h ~ 1e-11,
  // far below 1e-6 of gradients of size ~1/N; the 1e-3 floor is gradcheck's.
  const auto g = grad.to_host();
  double worst = 0;
  for (int64_t i = 0; i < n * k; ++i) {
    const double h = 1e-5, original = s[i];
    Tensor scratch;
    s[i] = original + h;
    const double plus = nn::softmax_cross_entropy(Tensor::from_host({n, k}, s), labels, scratch);
    s[i] = original - h;
    const double minus = nn::softmax_cross_entropy(Tensor::from_host({n, k}, s), labels, scratch);
    s[i] = original;
    const double numeric = (plus - minus) / (2 * h);
    worst = std::max(worst, std::abs(g[i] - numeric) / std::max({std::abs(g[i]), std::abs(numeric), 1e-3}));
  }
  CHECK(worst < 1e-6);
  for (int64_t r = 0; r < n; ++r) {  // each row of softmax - onehot sums to 0
    double row = 0;
    for (int64_t j = 0; j < k; ++j) row += g[r * k + j];
    CHECK(std::abs(row) < 1e-16);  // ~5 terms of size 1/N, each rounded to 2^-53 relative
  }
}

TEST_CASE("softmax_cross_entropy stays finite when a probability underflows", "[nn][classifier]") {
  // Row 0: the label's logit is 1000 below the others, so its softmax is
  // exp(-1000) = 0 in float and double; the loss must still be 1000 + log 2.
  const std::vector<float> s = {0, 1000, 1000, 5, 5, 5};
  const std::vector<int64_t> labels = {0, 1};
  haze::Tensor<float, Cpu> grad;
  const double loss = nn::softmax_cross_entropy(haze::Tensor<float, Cpu>::from_host({2, 3}, s), labels, grad);
  // Row 1 has three equal logits: -log(1/3). Float logits are exact here, and
  // the sums are taken in double: agreement to double rounding.
  CHECK(loss == Approx((1000 + std::log(2.0) + std::log(3.0)) / 2).epsilon(1e-14));
  const auto g = grad.to_host();
  CHECK(g[0] == -0.5f);
  CHECK(g[1] == 0.25f);
  CHECK(g[2] == 0.25f);
}

TEST_CASE("argmax_rows picks the largest logit, the first on ties", "[nn][classifier]") {
  const std::vector<double> s = {0.1, 0.9, 0.3,  //
                                 2.0, -1., 2.0,  //
                                 -5., -4., -3.};
  CHECK(nn::argmax_rows(Tensor::from_host({3, 3}, s)) == std::vector<int64_t>{1, 0, 2});
  CHECK_THROWS_WITH(nn::argmax_rows(Tensor::zeros({2, 3, 4})),
                    mentions("argmax_rows: expects logits [N, K], got [2, 3, 4]"));
}

TEST_CASE("softmax_cross_entropy rejects bad labels and shapes", "[nn][classifier][errors]") {
  const Tensor logits = Tensor::zeros({3, 10});
  Tensor grad;
  const std::vector<int64_t> too_big = {0, 10, 1}, negative = {0, 1, -1}, short_list = {1, 2};
  CHECK_THROWS_WITH(nn::softmax_cross_entropy(logits, too_big, grad), mentions("label 1 is 10, outside [0, 10)"));
  CHECK_THROWS_WITH(nn::softmax_cross_entropy(logits, negative, grad), mentions("label 2 is -1, outside [0, 10)"));
  CHECK_THROWS_WITH(nn::softmax_cross_entropy(logits, short_list, grad),
                    mentions("2 labels for logits [3, 10] (need 3)"));
  CHECK_THROWS_WITH(nn::softmax_cross_entropy(Tensor::zeros({30}), too_big, grad),
                    mentions("softmax_cross_entropy: expects logits [N, K], got [30]"));
}

TEST_CASE("a backward without a forward throws, and the cache is dropped", "[nn][classifier][errors]") {
  nn::GlobalAvgPool<double, Cpu> pool;
  CHECK_THROWS_WITH(pool.backward(Tensor::zeros({2, 3})),
                    mentions("GlobalAvgPool::backward called without a matching forward"));
  CHECK_THROWS_WITH(pool.forward(Tensor::zeros({2, 3})),
                    mentions("GlobalAvgPool: expects input [N, C, H, W], got [2, 3]"));
  (void)pool.forward(Tensor::zeros({2, 3, 4, 4}));
  CHECK_THROWS_WITH(pool.backward(Tensor::zeros({2, 4})),
                    mentions("dy [2, 4] should be [2, 3] for input [2, 3, 4, 4]"));
  (void)pool.backward(Tensor::zeros({2, 3}));
  CHECK_THROWS_WITH(pool.backward(Tensor::zeros({2, 3})), mentions("without a matching forward"));

  CHECK_THROWS_WITH(Classifier({.channels = {16, 32, 64, 100}}),
                    mentions("Classifier: 8 groups do not divide 100 channels"));
  CHECK_THROWS_WITH(Classifier({.classes = 1}), mentions("Classifier: need at least 2 classes, got 1"));
  Classifier model;
  CHECK_THROWS_WITH(model.backward(Tensor::zeros({2, 10})),
                    mentions("Classifier::backward called without a matching forward"));
  CHECK_THROWS_WITH(model.forward(Tensor::zeros({2, 3, 32, 32})),
                    mentions("Classifier::forward: expects input [N, 1, H, W], got [2, 3, 32, 32]"));
}

TEST_CASE("Classifier: names, shapes, infer equals forward", "[nn][classifier]") {
  Classifier model;
  haze::test::deterministic_init(model);
  const auto params = nn::parameters_of(model);
  REQUIRE(params.size() == 18);
  CHECK(params[0].name == "blocks.0.conv.weight");
  CHECK(params[3].name == "blocks.0.norm.bias");
  CHECK(params[12].name == "blocks.3.conv.weight");
  CHECK(params[16].name == "head.weight");
  CHECK(params[17].name == "head.bias");
  CHECK(params[12].value->shape() == (Shape{128, 64, 3, 3}));
  CHECK(params[16].value->shape() == (Shape{10, 128}));
  int64_t count = 0;
  for (const auto& p : params) count += p.value->numel();
  CHECK(count == 144 + 16 + 32 + 4608 + 32 + 64 + 18432 + 64 + 128 + 73728 + 128 + 256 + 1280 + 10);
  CHECK(model.feature_dim() == 128);

  const Tensor x = random_input({3, 1, 32, 32}, 5);
  const auto logits = model.forward(x);
  CHECK(logits.shape() == (Shape{3, 10}));
  CHECK(model.infer(x).to_host() == logits.to_host());  // the same ops in the same order: bit-equal
  CHECK(model.features(x).shape() == (Shape{3, 128}));

  // zero_grad clears what a backward accumulated.
  const auto largest = [](const Tensor& t) {
    double m = 0;
    for (double v : t.to_host()) m = std::max(m, std::abs(v));
    return m;
  };
  (void)model.backward(Tensor::full({3, 10}, 1.0));
  CHECK(largest(*params[0].grad) > 0);
  model.zero_grad();
  for (const auto& p : params) CHECK(largest(*p.grad) == 0);
}

TEST_CASE("Classifier backward matches finite differences", "[nn][classifier][gradcheck]") {
  Classifier model;  // the default channels 16, 32, 64, 128
  haze::test::deterministic_init(model);
  Tensor x = random_input({2, 1, 32, 32}, 11);
  require_small(one_input_gradcheck(model, x, 6));
}
