// train/ on backend::Device against backend::Cpu in float: initialisation
// (bit-identical: both draw on the host); a Trainer step of the tiny UNet
// and of the MLP denoiser, whose loss and gradients (as the backward left
// them: clipping is folded into the update) must agree to 1e-4 relative
// to each tensor's scale (as for the UNet parity test); AdamW and the EMA
// fed the same gradients (elementwise, a few roundings: 1e-6); and what a
// Device step reads back (once per training step, once per sampling loop). The parameters after a step are not compared: Adam's first update
// is about lr sign(g), so a gradient that is rounding noise on both sides
// may legitimately move its weight by 2 lr in opposite directions.
#include <haze/haze.hpp>
#include <haze/nn/init.hpp>
#include <haze/nn/mlp_denoiser.hpp>
#include <haze/nn/unet.hpp>
#include <haze/sample/ddim.hpp>
#include <haze/train/trainer.hpp>
#include <haze/verify/compare.hpp>

#include <sstream>

#include "test_support.hpp"

using haze::backend::Cpu;
using haze::backend::Device;
namespace nn = haze::nn;
namespace train = haze::train;

namespace {

// Parameter values (or, with grads, their gradients) within tol of the tensor's scale.
template <class A, class B>
void require_close(const nn::Parameters<float, A>& device, const nn::Parameters<float, B>& cpu, double tol,
                   bool grads = false) {
  REQUIRE(device.size() == cpu.size());
  for (size_t i = 0; i < cpu.size(); ++i) {
    const auto d = (grads ? device[i].grad : device[i].value)->to_host();
    const auto c = (grads ? cpu[i].grad : cpu[i].value)->to_host();
    double scale = 1e-3;
    for (float v : c) scale = std::max(scale, double(std::abs(v)));
    const auto result = haze::verify::compare<float>(d, c, tol * scale, tol);
    std::ostringstream text;
    text << cpu[i].name << ": " << result;
    INFO(text.str());
    CHECK(result.ok());
  }
}

train::Dataset images() {
  train::Dataset data;
  data.item_shape = {1, 16, 16};
  data.values = haze::test::uniform<float>(12 * 256, 8);
  for (int i = 0; i < 12; ++i) data.labels.push_back(i % 3);
  return data;
}

template <class Make>
void check_trainer_step(Make make, const train::Dataset& data, train::TrainerOptions options) {
  auto cpu_model = make.template operator()<Cpu>();
  auto device_model = make.template operator()<Device>();
  nn::init_parameters(cpu_model, 3);
  nn::init_parameters(device_model, 3);
  require_close(nn::parameters_of(device_model), nn::parameters_of(cpu_model), 0.0);  // same draws, same floats
  train::Trainer<decltype(cpu_model), haze::predict::Epsilon> cpu(cpu_model, haze::Schedule::make("cosine", 100), data,
                                                                  options);
  train::Trainer<decltype(device_model), haze::predict::Epsilon> device(device_model, haze::Schedule::make("cosine", 100),
                                                                        data, options);
  const train::StepReport rc = cpu.step(), rd = device.step();
  CHECK(rd.loss == Approx(rc.loss).epsilon(1e-4));
  CHECK(rd.grad_norm == Approx(rc.grad_norm).epsilon(1e-4));
  require_close(nn::parameters_of(device_model), nn::parameters_of(cpu_model), 1e-4, /*grads=*/true);
}

}  // namespace

TEST_CASE("Trainer steps of the tiny UNet agree on Device and Cpu", "[parity][train]") {
  nn::UNetConfig config = nn::UNetConfig::tiny();
  config.num_classes = 3;
  config.dropout = 0.1;  // Philox masks: the same on both backends
  const auto make = [&]<class B>() { return nn::UNet<float, B>(config); };
  check_trainer_step(make, images(),
                     {.batch_size = 4, .lr = {.peak = 1e-3}, .min_snr_gamma = 5, .num_classes = 3,
                      .label_dropout = 0.3, .seed = 4});
}

TEST_CASE("Trainer steps of the MLP denoiser agree on Device and Cpu", "[parity][train]") {
  train::Dataset points;
  points.item_shape = {2};
  points.values = haze::test::uniform<float>(64, 9);
  const auto make = []<class B>() { return nn::MlpDenoiser<float, B>(2, 32, 2); };
  check_trainer_step(make, points, {.batch_size = 16, .accumulation = 2, .lr = {.peak = 1e-2}, .seed = 5});
}

TEST_CASE("AdamW and Ema updates agree on Device and Cpu", "[parity][train]") {
  const auto host_p = haze::test::uniform<float>(1000, 1), host_g = haze::test::uniform<float>(1000, 2);
  nn::Param<float, Cpu> pc(haze::Shape{1000});
  nn::Param<float, Device> pd(haze::Shape{1000});
  pc.value.assign_from_host(host_p), pd.value.assign_from_host(host_p);
  nn::Parameters<float, Cpu> cpu_params;
  nn::Parameters<float, Device> device_params;
  nn::add_parameter(cpu_params, "", "w", pc, nn::ParamKind::Weight);
  nn::add_parameter(device_params, "", "w", pd, nn::ParamKind::Weight);
  const train::AdamWOptions options{.weight_decay = 0.1};
  train::AdamW<float, Cpu> adam_cpu(cpu_params, options);
  train::AdamW<float, Device> adam_device(device_params, options);
  train::Ema<float, Cpu> ema_cpu(cpu_params, 0.9);
  train::Ema<float, Device> ema_device(device_params, 0.9);
  for (int step = 1; step <= 3; ++step) {
    pc.grad.assign_from_host(host_g), pd.grad.assign_from_host(host_g);
    adam_cpu.step(1e-2), adam_device.step(1e-2);
    ema_cpu.update(cpu_params, step), ema_device.update(device_params, step);
  }
  require_close(device_params, cpu_params, 1e-6);
  CHECK(haze::verify::compare<float>(ema_device.shadow(0).to_host(), ema_cpu.shadow(0).to_host(), 1e-6, 1e-6).ok());
  CHECK(haze::verify::compare<float>(adam_device.second_moment(0).to_host(), adam_cpu.second_moment(0).to_host(),
                                     1e-9, 1e-6).ok());

  // An update that overflows float is refused on both, naming the same
  // count, and writes nothing.
  const auto before_cpu = pc.value.to_host(), before_device = pd.value.to_host();
  const auto refusal = Catch::Matchers::Contains("AdamW::step: step 4 at learning rate 1e+39 would make 1000 of the "
                                                 "1000 values of 'w' (or its moments) NaN or infinite");
  CHECK_THROWS_WITH(adam_cpu.step(1e39), refusal);
  CHECK_THROWS_WITH(adam_device.step(1e39), refusal);
  CHECK(adam_cpu.steps_taken() == 3);
  CHECK(adam_device.steps_taken() == 3);
  CHECK(pc.value.to_host() == before_cpu);
  CHECK(pd.value.to_host() == before_device);
}

TEST_CASE("A Trainer step reads the device once, a sampling loop once at its end", "[parity][train][counters]") {
  const auto& counters = haze::backend::device_counters();
  train::Dataset points;
  points.item_shape = {2};
  points.values = haze::test::uniform<float>(64, 9);
  nn::MlpDenoiser<float, Device> model(2, 32, 2);
  nn::init_parameters(model, 3);
  train::Trainer<nn::MlpDenoiser<float, Device>, haze::predict::Epsilon> trainer(
      model, haze::Schedule::make("cosine", 100), points, {.batch_size = 16, .accumulation = 2, .seed = 5});
  for (int step = 0; step < 3; ++step) {
    const int64_t before = counters.round_trips.load();
    trainer.step();
    CHECK(counters.round_trips.load() == before + 1);  // the loss, the norm and the verdict, together
  }

  const haze::sample::Ddim<> ddim(haze::Schedule::make("cosine", 100), {.steps = 10, .eta = 1.0});
  const auto denoiser = [](const haze::Tensor<float, Device>& x, double) { return x.clone(); };
  haze::Generator gen{1};
  auto noise = haze::Tensor<float, Device>({8, 2});
  haze::randn(noise, gen);
  const int64_t before = counters.round_trips.load();
  const auto x = ddim.run(denoiser, std::move(noise), gen);
  CHECK(counters.round_trips.load() == before + 1);  // finish(): every step's non-finite count at once
}

TEST_CASE("A Trainer step on the Device with a NaN loss changes nothing", "[parity][train][errors]") {
  train::Dataset points;
  points.item_shape = {2};
  points.values = haze::test::uniform<float>(64, 9);
  points.values[3] = NAN;
  nn::MlpDenoiser<float, Device> model(2, 32, 2);
  nn::init_parameters(model, 3);
  const auto params = nn::parameters_of(model);
  std::vector<std::vector<float>> before;
  for (const auto& p : params) before.push_back(p.value->to_host());
  train::Trainer<nn::MlpDenoiser<float, Device>, haze::predict::Epsilon> trainer(
      model, haze::Schedule::make("cosine", 100), points, {.batch_size = 64, .seed = 5});
  const auto ema_before = trainer.ema().shadow(0).to_host();
  CHECK_THROWS_WITH(trainer.step(), Catch::Matchers::Contains("the loss is nan at step 1 (micro-batch 0)") &&
                                        Catch::Matchers::Contains("no parameter was changed"));
  CHECK(trainer.steps_taken() == 0);
  for (size_t i = 0; i < params.size(); ++i) CHECK(params[i].value->to_host() == before[i]);
  CHECK(trainer.ema().shadow(0).to_host() == ema_before);
}
