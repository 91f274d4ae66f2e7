// train/: AdamW against torch.optim.AdamW, the EMA and learning-rate
// formulas, gradient clipping, the data order, initialisation, and the
// Trainer's mechanics (draws, label dropout, NaN stop, learning).
#include <haze/haze.hpp>
#include <haze/nn/init.hpp>
#include <haze/nn/unet.hpp>
#include <haze/train/trainer.hpp>

#include <algorithm>
#include <cmath>
#include <set>

#include "nn/golden_file.hpp"
#include "train/scale_model.hpp"

using haze::backend::Cpu;
using haze::test::mentions;
namespace nn = haze::nn;
namespace train = haze::train;
template <class T>
using Tensor = haze::Tensor<T, Cpu>;

TEST_CASE("AdamW matches torch.optim.AdamW step for step", "[train][adamw]") {
  const haze::test::GoldenFile golden("adamw");
  nn::Param<double, Cpu> weight(haze::Shape{3, 4}), bias(haze::Shape{4});
  weight.value = golden.tensor<double, Cpu>("weight.initial");
  bias.value = golden.tensor<double, Cpu>("bias.initial");
  nn::Parameters<double, Cpu> params;
  nn::add_parameter(params, "", "weight", weight, nn::ParamKind::Weight);
  nn::add_parameter(params, "", "bias", bias, nn::ParamKind::Bias);
  train::AdamW<double, Cpu> adamw(params, {.beta1 = 0.9, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1});
  const double lrs[] = {1e-2, 5e-3, 2e-2};
  for (int step = 1; step <= 3; ++step) {
    const std::string s = std::to_string(step);
    // Into the gradients, not replacing them: AdamW packed them into its arena.
    haze::ops::copy(golden.tensor<double, Cpu>("weight.grad" + s), weight.grad);
    haze::ops::copy(golden.tensor<double, Cpu>("bias.grad" + s), bias.grad);
    adamw.step(lrs[step - 1]);
    // PyTorch divides by sqrt(1 - b2^s) where haze multiplies by its
    // reciprocal: a few ulp apart, far inside 1e-12.
    golden.check("weight.step" + s, weight.value, 1e-12);
    golden.check("bias.step" + s, bias.value, 1e-12);
  }
  CHECK(adamw.steps_taken() == 3);
}

TEST_CASE("AdamW rejects bad options and learning rates", "[train][adamw][errors]") {
  nn::Param<float, Cpu> w(haze::Shape{2});
  nn::Parameters<float, Cpu> params;
  nn::add_parameter(params, "", "w", w, nn::ParamKind::Weight);
  CHECK_THROWS_WITH((train::AdamW<float, Cpu>(params, {.beta1 = 1.0})), mentions("beta1 must be in [0, 1), got 1"));
  CHECK_THROWS_WITH((train::AdamW<float, Cpu>(params, {.eps = 0})), mentions("eps must be > 0"));
  train::AdamW<float, Cpu> adamw(params);
  CHECK_THROWS_WITH(adamw.step(NAN), mentions("learning rate must be finite"));
}

TEST_CASE("AdamW's queued step with a clipping factor and the EMA folded in equals the three done apart",
          "[train][adamw][ema]") {
  // Two copies of one model: one clipped with ops::scale, stepped and then
  // averaged; the other stepped once with the factor, the gate and the
  // average read from backend memory (the Trainer's form). Same expressions
  // in the same order, so the same bits (no contraction in this build).
  struct Copy {
    nn::Param<float, Cpu> weight{haze::Shape{37}}, bias{haze::Shape{5}};
    nn::Parameters<float, Cpu> params;
    Copy() {
      weight.value.assign_from_host(haze::test::uniform<float>(37, 1));
      bias.value.assign_from_host(haze::test::uniform<float>(5, 2));
      nn::add_parameter(params, "", "weight", weight, nn::ParamKind::Weight);
      nn::add_parameter(params, "", "bias", bias, nn::ParamKind::Bias);
    }
    void set_grads() {
      weight.grad.assign_from_host(haze::test::uniform<float>(37, 3));
      bias.grad.assign_from_host(haze::test::uniform<float>(5, 4));
    }
  } apart, folded;
  const train::AdamWOptions options{.weight_decay = 0.1};
  train::AdamW<float, Cpu> adam_apart(apart.params, options), adam_folded(folded.params, options);
  train::Ema<float, Cpu> ema_apart(apart.params, 0.9), ema_folded(folded.params, 0.9);
  const float factor = 0.37f;
  auto controls = Tensor<double>::zeros({3});  // nonfinite, grad_scale, blocked
  controls.assign_from_host(std::vector<double>{0, factor, 0});
  double* c = controls.data();
  for (int step = 1; step <= 3; ++step) {
    apart.set_grads(), folded.set_grads();
    for (const auto& p : apart.params) haze::ops::scale(*p.grad, factor);
    adam_apart.step(1e-2);
    ema_apart.update(apart.params, step);
    adam_folded.enqueue_step(1e-2, {.nonfinite = c, .grad_scale = c + 1, .blocked = c + 2, .average = &ema_folded,
                                    .average_step = step});
    CHECK(adam_folded.steps_taken() == step - 1);  // counted when finished
    adam_folded.finish_step(1e-2, c[0]);
  }
  for (size_t i = 0; i < 2; ++i) {
    CHECK(apart.params[i].value->to_host() == folded.params[i].value->to_host());
    CHECK(adam_apart.first_moment(i).to_host() == adam_folded.first_moment(i).to_host());
    CHECK(adam_apart.second_moment(i).to_host() == adam_folded.second_moment(i).to_host());
    CHECK(ema_apart.shadow(i).to_host() == ema_folded.shadow(i).to_host());
  }

  // A set gate writes nothing, however good the update.
  const auto values = folded.weight.value.to_host(), average = ema_folded.shadow(0).to_host();
  controls.assign_from_host(std::vector<double>{0, 1, 1});
  adam_folded.enqueue_step(1e-2, {.nonfinite = c, .grad_scale = c + 1, .blocked = c + 2, .average = &ema_folded,
                                  .average_step = 4});
  CHECK(c[0] == 0);
  CHECK(folded.weight.value.to_host() == values);
  CHECK(ema_folded.shadow(0).to_host() == average);

  // An EMA made for other parameters is refused.
  CHECK_THROWS_WITH(adam_folded.enqueue_step(1e-2, {.nonfinite = c, .average = &ema_apart}),
                    mentions("the optimizer's parameters are not the ones this average was made for"));
  CHECK_THROWS_WITH(ema_apart.update(folded.params, 4), mentions("parameter 'weight' is not the one this average"));
}

TEST_CASE("a frozen parameter sits last in the arena, and AdamW and the EMA leave it as it is", "[train][adamw][ema]") {
  nn::Param<float, Cpu> frozen(haze::Shape{6}), weight(haze::Shape{3}), bias(haze::Shape{2});
  const auto frequencies = haze::test::uniform<float>(6, 7);
  frozen.value.assign_from_host(frequencies);
  weight.value.assign_from_host(haze::test::uniform<float>(3, 8));
  nn::Parameters<float, Cpu> params;
  nn::add_parameter(params, "", "frozen", frozen, nn::ParamKind::Frozen);
  nn::add_parameter(params, "", "weight", weight, nn::ParamKind::Weight);
  nn::add_parameter(params, "", "bias", bias, nn::ParamKind::Bias);
  // Decay on everything and a gradient on the frozen one too: neither may touch it.
  train::AdamW<float, Cpu> adam(params, {.weight_decay = 0.5, .decay_all = true});
  train::Ema<float, Cpu> ema(params, 0.9);
  CHECK(adam.arena().offset(0) == 128);  // weight at 0, bias at 64, then the frozen one
  CHECK(adam.arena().trained_end() == 66);
  CHECK(adam.arena().size() == 134);
  const auto weight_before = weight.value.to_host();
  for (int step = 1; step <= 3; ++step) {
    frozen.grad.assign_from_host(haze::test::uniform<float>(6, 9));
    weight.grad.assign_from_host(haze::test::uniform<float>(3, 10));
    adam.step(1e-2);
    ema.update(params, step);
  }
  CHECK(frozen.value.to_host() == frequencies);
  CHECK(ema.shadow(0).to_host() == frequencies);
  CHECK(weight.value.to_host() != weight_before);  // the others did train
}

TEST_CASE("Ema averages with the warm-up decay and writes back", "[train][ema]") {
  nn::Param<double, Cpu> w(haze::Shape{2});
  w.value.assign_from_host(std::vector<double>{1.0, -2.0});
  nn::Parameters<double, Cpu> params;
  nn::add_parameter(params, "", "w", w, nn::ParamKind::Weight);
  train::Ema<double, Cpu> ema(params, 0.5);
  CHECK(ema.decay_at(1) == Approx(2.0 / 11.0));
  CHECK(ema.decay_at(1000) == 0.5);  // capped by max_decay
  w.value.assign_from_host(std::vector<double>{3.0, 0.0});
  ema.update(params, 1);  // d = 2/11: shadow = d * old + (1 - d) * new
  const double d = 2.0 / 11.0;
  const auto s = ema.shadow(0).to_host();
  CHECK(s[0] == Approx(d * 1.0 + (1 - d) * 3.0).epsilon(1e-15));
  CHECK(s[1] == Approx(d * -2.0).epsilon(1e-15));
  nn::Param<double, Cpu> target(haze::Shape{2});
  nn::Parameters<double, Cpu> other;
  nn::add_parameter(other, "", "w", target, nn::ParamKind::Weight);
  ema.copy_to(other);
  CHECK(target.value.to_host() == s);
  nn::Param<double, Cpu> wrong(haze::Shape{3});
  nn::Parameters<double, Cpu> mismatched;
  nn::add_parameter(mismatched, "", "w", wrong, nn::ParamKind::Weight);
  CHECK_THROWS_WITH(ema.copy_to(mismatched), mentions("parameter 'w' is [3] but its average is [2]"));
  CHECK_THROWS_WITH((train::Ema<double, Cpu>(params, 1.0)), mentions("max_decay must be in [0, 1)"));
}

TEST_CASE("LrSchedule: linear warm-up, then constant or cosine", "[train][lr]") {
  train::LrSchedule constant{.peak = 1e-3, .warmup_steps = 10};
  CHECK(constant.at(1) == Approx(1e-4));
  CHECK(constant.at(5) == Approx(5e-4));
  CHECK(constant.at(10) == 1e-3);
  CHECK(constant.at(5000) == 1e-3);
  train::LrSchedule cosine{.peak = 2e-3, .warmup_steps = 10, .decay = train::LrSchedule::Decay::Cosine,
                           .total_steps = 110, .final_ratio = 0.1};
  CHECK(cosine.at(10) == Approx(2e-3));
  CHECK(cosine.at(60) == Approx(2e-3 * (0.1 + 0.9 * 0.5)));  // half way: the mean of peak and floor
  CHECK(cosine.at(110) == Approx(2e-4));
  CHECK(cosine.at(500) == Approx(2e-4));
  train::LrSchedule bad = cosine;
  bad.total_steps = 10;
  CHECK_THROWS_WITH(bad.validate(), mentions("cosine decay needs total_steps (10) > warmup_steps (10)"));
  CHECK_THROWS_WITH(train::LrSchedule::decay_by_name("step"), mentions("unknown decay 'step'"));
}

TEST_CASE("clip_grad_norm scales every gradient by one factor", "[train][clip]") {
  nn::Param<double, Cpu> a(haze::Shape{2}), b(haze::Shape{1});
  a.grad.assign_from_host(std::vector<double>{3.0, 0.0});
  b.grad.assign_from_host(std::vector<double>{4.0});
  nn::Parameters<double, Cpu> params;
  nn::add_parameter(params, "", "a", a, nn::ParamKind::Weight);
  nn::add_parameter(params, "", "b", b, nn::ParamKind::Bias);
  CHECK(train::clip_grad_norm(params, 10.0) == Approx(5.0));  // under the cap: untouched
  CHECK(a.grad.to_host()[0] == 3.0);
  CHECK(train::clip_grad_norm(params, 1.0) == Approx(5.0));
  CHECK(a.grad.to_host()[0] == Approx(0.6));
  CHECK(b.grad.to_host()[0] == Approx(0.8));
  b.grad.assign_from_host(std::vector<double>{INFINITY});
  CHECK(std::isinf(train::clip_grad_norm(params, 1.0)));
  CHECK(a.grad.to_host()[0] == Approx(0.6));  // a non-finite norm scales nothing
}

TEST_CASE("BatchOrder visits every item once per epoch, reproducibly", "[train][data]") {
  train::BatchOrder order(10, 3);
  std::vector<int64_t> first = order.next(10);
  std::vector<int64_t> sorted = first;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 10; ++i) CHECK(sorted[i] == i);
  const std::vector<int64_t> second = order.next(10);
  CHECK(order.epoch() == 1);
  CHECK(second != first);  // a fresh shuffle (1 in 10! to collide)
  train::BatchOrder resumed(10, 3);
  resumed.seek(1, 4);
  const std::vector<int64_t> tail = resumed.next(6);
  CHECK(std::equal(tail.begin(), tail.end(), second.begin() + 4));
  CHECK_THROWS_WITH(resumed.seek(0, 11), mentions("position 11 outside a dataset of 10"));
}

TEST_CASE("init_parameters: PyTorch's default ranges, the same for a seed", "[train][init]") {
  nn::UNetConfig config = nn::UNetConfig::tiny();
  config.num_classes = 3;
  nn::UNet<float, Cpu> a(config), b(config), c(config);
  nn::init_parameters(a, 7);
  nn::init_parameters(b, 7);
  nn::init_parameters(c, 8);
  const auto pa = nn::parameters_of(a), pb = nn::parameters_of(b), pc = nn::parameters_of(c);
  bool any_differs = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    const auto va = pa[i].value->to_host();
    INFO(pa[i].name);
    CHECK(va == pb[i].value->to_host());
    any_differs |= va != pc[i].value->to_host();
    const std::string& name = pa[i].name;
    if (pa[i].kind == nn::ParamKind::NormScale) CHECK(*std::min_element(va.begin(), va.end()) == 1.0f);
    if (pa[i].kind == nn::ParamKind::Weight || pa[i].kind == nn::ParamKind::Bias) {
      const std::string weight = name.substr(0, name.rfind('.')) + ".weight";
      const auto w = std::find_if(pa.begin(), pa.end(), [&](const auto& p) { return p.name == weight; });
      REQUIRE(w != pa.end());
      const double bound = 1 / std::sqrt(double(w->value->numel() / w->value->dim(0)));
      double largest = 0;
      for (float v : va) largest = std::max(largest, std::abs(double(v)));
      CHECK(largest <= bound);
      if (va.size() >= 64) CHECK(largest > 0.8 * bound);  // the range is used, not a fraction of it
    }
  }
  CHECK(any_differs);
}

namespace {
// 16 items of 4 values each, labels 0..3.
train::Dataset small_dataset() {
  train::Dataset data;
  data.item_shape = {4};
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 4; ++j) data.values.push_back(0.1f * float(i % 4) - 0.2f + 0.05f * float(j));
    data.labels.push_back(i % 4);
  }
  return data;
}
}  // namespace

TEST_CASE("Trainer draws timesteps in range and drops labels to the null class", "[train][trainer]") {
  const train::Dataset data = small_dataset();
  haze::test::ScaleModel<double, Cpu> model;
  train::TrainerOptions options{.batch_size = 16, .lr = {.peak = 1e-2}, .num_classes = 4, .label_dropout = 0.25,
                                .seed = 11};
  train::Trainer<haze::test::ScaleModel<double, Cpu>, haze::predict::Epsilon> trainer(
      model, haze::Schedule::make("linear", 50), data, options);
  int64_t dropped = 0, seen = 0;
  std::set<double> timesteps;
  for (int s = 0; s < 40; ++s) {
    const train::StepReport report = trainer.step();
    CHECK(report.step == s + 1);
    CHECK(std::isfinite(report.loss));
    for (double t : model.last_timesteps) timesteps.insert(t);
    for (int64_t label : model.last_labels) dropped += label == 4, ++seen;
  }
  CHECK(*timesteps.begin() >= 0);
  CHECK(*timesteps.rbegin() <= 49);
  CHECK(timesteps.size() > 45);  // 640 draws from 50 values cover nearly all
  // 640 Bernoulli(0.25) draws: mean 160, sd 11; 5 sd either side.
  CHECK(std::abs(double(dropped) - 160.0) < 55.0);
  CHECK(seen == 640);
}

TEST_CASE("Trainer learns: the loss of a scale model falls", "[train][trainer]") {
  // eps-prediction with y = w x_t: the best w is the regression coefficient
  // of eps on x_t, well away from the initial 0.5 for this data and schedule.
  const train::Dataset data = small_dataset();
  haze::test::ScaleModel<double, Cpu> model;
  train::TrainerOptions options{.batch_size = 16, .lr = {.peak = 5e-2}, .clip_norm = 0, .seed = 2};
  train::Trainer<haze::test::ScaleModel<double, Cpu>, haze::predict::Epsilon> trainer(
      model, haze::Schedule::make("cosine", 100), data, options);
  double early = 0, late = 0;
  for (int s = 0; s < 200; ++s) {
    const double loss = trainer.step().loss;
    if (s < 20) early += loss;
    if (s >= 180) late += loss;
  }
  CHECK(late < 0.8 * early);
  CHECK(model.weight() > 0.6);
}

TEST_CASE("Trainer stops on a NaN loss with the step and changes nothing", "[train][trainer][errors]") {
  train::Dataset data = small_dataset();
  data.values[5] = NAN;
  haze::test::ScaleModel<float, Cpu> model;
  train::Trainer<haze::test::ScaleModel<float, Cpu>, haze::predict::Epsilon> trainer(
      model, haze::Schedule::make("linear", 10), data, {.batch_size = 16, .seed = 1});
  CHECK_THROWS_WITH(trainer.step(), mentions("the loss is nan at step 1") && mentions("no parameter was changed"));
  CHECK(model.weight() == 0.5f);
  CHECK(trainer.steps_taken() == 0);
}

TEST_CASE("Trainer rejects labels outside the classes and missing labels", "[train][trainer][errors]") {
  train::Dataset data = small_dataset();
  haze::test::ScaleModel<float, Cpu> model;
  using Trainer = train::Trainer<haze::test::ScaleModel<float, Cpu>, haze::predict::Epsilon>;
  CHECK_THROWS_WITH(Trainer(model, haze::Schedule::make("linear", 10), data, {.num_classes = 3}),
                    mentions("label 3 outside [0, 3)"));
  data.labels.clear();
  CHECK_THROWS_WITH(Trainer(model, haze::Schedule::make("linear", 10), data, {.num_classes = 4}),
                    mentions("the dataset has no labels"));
  data = small_dataset();
  data.values.pop_back();
  CHECK_THROWS_WITH(Trainer(model, haze::Schedule::make("linear", 10), data, {}),
                    mentions("63 values do not make whole items of 4"));
}
