// nn/parameter_arena.hpp: packing keeps every value and gradient, lays the
// weights out first on 256-byte boundaries with zero gaps, binds each
// parameter to its slice, is idempotent, and catches a replaced tensor.
#include <haze/backend/cpu.hpp>
#include <haze/nn/parameter_arena.hpp>

#include <vector>

#include "test_support.hpp"

using haze::Shape;
using haze::backend::Cpu;
using haze::test::mentions;
namespace nn = haze::nn;
using Tensor = haze::Tensor<float, Cpu>;

TEST_CASE("ParameterArena packs values and gradients into one buffer each, weights first", "[nn][arena]") {
  nn::Param<float, Cpu> w1(Shape{3, 5}), bias(Shape{7}), w2(Shape{2, 2});
  const auto v1 = haze::test::uniform<float>(15, 1), vb = haze::test::uniform<float>(7, 2),
             v2 = haze::test::uniform<float>(4, 3), g1 = haze::test::uniform<float>(15, 4);
  w1.value.assign_from_host(v1), bias.value.assign_from_host(vb), w2.value.assign_from_host(v2);
  w1.grad.assign_from_host(g1);
  nn::Parameters<float, Cpu> params;
  nn::add_parameter(params, "", "w1", w1, nn::ParamKind::Weight);
  nn::add_parameter(params, "", "bias", bias, nn::ParamKind::Bias);
  nn::add_parameter(params, "", "w2", w2, nn::ParamKind::Weight);

  const nn::ParameterArena<float, Cpu> arena(params);
  // 64 floats are 256 bytes: w1 [0, 15), w2 [64, 68), then bias [128, 135).
  CHECK(arena.offset(0) == 0);
  CHECK(arena.offset(2) == 64);
  CHECK(arena.offset(1) == 128);
  CHECK(arena.size() == 135);
  CHECK(arena.decayed_end() == 68);
  float* values = arena.values("test");
  float* grads = arena.grads("test");
  CHECK(w2.value.data() == values + 64);
  CHECK(bias.grad.data() == grads + 128);
  CHECK(w1.value.to_host() == v1);
  CHECK(bias.value.to_host() == vb);
  CHECK(w2.value.to_host() == v2);
  CHECK(w1.grad.to_host() == g1);
  CHECK(w2.grad.to_host() == std::vector<float>(4, 0.0f));
  for (int64_t e : {15, 63, 68, 127}) {
    CHECK(values[e] == 0.0f);  // the gaps
    CHECK(grads[e] == 0.0f);
    CHECK(arena.parameter_at(e) == params.size());
  }
  CHECK(arena.parameter_at(130) == 1);
  bias.value.assign_from_host(std::vector<float>(7, 2.0f));  // layers write through their tensors
  CHECK(values[128] == 2.0f);

  // Packing again moves nothing: the second arena describes the first.
  const nn::ParameterArena<float, Cpu> again(params);
  CHECK(again.values("test") == values);
  CHECK(w1.value.data() == values);

  // Replacing a tensor (rather than assigning into it) takes it out of the arena.
  bias.value = Tensor::zeros({7});
  CHECK_THROWS_WITH(arena.values("AdamW::step"),
                    mentions("AdamW::step: parameter 'bias' was replaced after it was packed into the parameter arena"));
}

TEST_CASE("A lone parameter is its own arena, and no parameters make an empty one", "[nn][arena]") {
  nn::Param<float, Cpu> w(Shape{3});
  nn::Parameters<float, Cpu> params;
  nn::add_parameter(params, "", "w", w, nn::ParamKind::Weight);
  const float* before = w.value.data();
  const nn::ParameterArena<float, Cpu> arena(params);
  CHECK(arena.size() == 3);
  CHECK(arena.values("test") == before);

  const nn::ParameterArena<float, Cpu> none(nn::Parameters<float, Cpu>{});
  CHECK(none.size() == 0);
  CHECK(none.values("test") == nullptr);
  none.zero_grads();  // nothing to do, and no error
}
