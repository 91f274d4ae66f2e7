#pragma once
// What the data-parallel tests share: a small class-conditional UNet with
// dropout, a data set of 37 images, the trainer options, and a run's whole
// state (parameters, moments, averages, losses, norms) to compare bit for bit.
#include <haze/haze.hpp>
#include <haze/nn/init.hpp>
#include <haze/nn/unet.hpp>
#include <haze/train/local_group.hpp>
#include <haze/train/trainer.hpp>

#include <catch2/catch.hpp>

#include <functional>
#include <thread>

#include "test_support.hpp"

namespace haze::test::parallel {

using haze::backend::Cpu;
namespace nn = haze::nn;
namespace train = haze::train;
using UNet = nn::UNet<float, Cpu>;
using Trainer = train::Trainer<UNet, haze::predict::Epsilon>;


inline train::Dataset images() {
  train::Dataset data{{1, 16, 16}, haze::test::uniform<float>(37 * 256, 21), {}};
  for (int64_t i = 0; i < 37; ++i) data.labels.push_back(i % 4);
  return data;
}

inline nn::UNetConfig config() {
  nn::UNetConfig c = nn::UNetConfig::tiny();
  c.num_classes = 4;
  c.dropout = 0.1;  // dropout masks come from the micro-batch's generator too
  return c;
}

inline const train::TrainerOptions base{.batch_size = 3, .lr = {.peak = 1e-2, .warmup_steps = 2}, .clip_norm = 0.5,
                                 .num_classes = 4, .seed = 9};

// Everything a step writes, as host values.
struct State {
  std::vector<std::vector<float>> values, first, second, average;
  std::vector<double> losses, norms;
  int64_t steps = 0;
};

inline State state_of(Trainer& trainer) {
  State s;
  s.steps = trainer.steps_taken();
  for (size_t i = 0; i < trainer.parameters().size(); ++i) {
    s.values.push_back(trainer.parameters()[i].value->to_host());
    s.first.push_back(trainer.optimizer().first_moment(i).to_host());
    s.second.push_back(trainer.optimizer().second_moment(i).to_host());
    s.average.push_back(trainer.ema().shadow(i).to_host());
  }
  return s;
}

// `steps` steps of `trainer`; its state after them, with their losses and norms.
inline State run_steps(Trainer& trainer, int steps) {
  std::vector<double> losses, norms;
  for (int k = 0; k < steps; ++k) {
    const train::StepReport report = trainer.step();
    losses.push_back(report.loss);
    norms.push_back(report.grad_norm);
    CHECK(report.items == trainer.options().batch_size * trainer.options().accumulation *
                              trainer.communicator().size());
  }
  State s = state_of(trainer);
  s.losses = losses;
  s.norms = norms;
  return s;
}

inline haze::Schedule schedule() { return haze::Schedule::make("cosine", 100); }

inline train::TrainerOptions with_accumulation(int accumulation) {
  train::TrainerOptions options = base;
  options.accumulation = accumulation;
  return options;
}

// `steps` steps on one rank with accumulation `accumulation`.
inline State one_rank(int accumulation, int steps, const train::Dataset& data) {
  UNet model(config());
  nn::init_parameters(model, 5);
  Trainer trainer(model, schedule(), data, with_accumulation(accumulation));
  return run_steps(trainer, steps);
}

inline void require_same(const State& a, const State& b) {
  REQUIRE(a.values.size() == b.values.size());
  for (size_t i = 0; i < a.values.size(); ++i) {
    INFO("parameter " << i);
    CHECK(a.values[i] == b.values[i]);
    CHECK(a.first[i] == b.first[i]);
    CHECK(a.second[i] == b.second[i]);
    CHECK(a.average[i] == b.average[i]);
  }
  CHECK(a.losses == b.losses);
  CHECK(a.norms == b.norms);
  CHECK(a.steps == b.steps);
}


// `steps` steps of rank `rank` of `communicator` (accumulation 1). A rank
// r > 0 starts from other parameters, which the Trainer replaces by rank 0's.
inline State run_rank(train::Communicator& communicator, int steps, const train::Dataset& data) {
  UNet model(config());
  nn::init_parameters(model, 5 + uint64_t(communicator.rank()) * 100);
  Trainer trainer(model, schedule(), data, base, communicator);
  return run_steps(trainer, steps);
}

// rank(r) on each of `ranks` ranks of a LocalGroup (threads); each rank's result.
inline std::vector<State> on_local_ranks(int ranks, const std::function<State(train::Communicator&)>& rank) {
  train::LocalGroup group(ranks);
  std::vector<State> out(static_cast<size_t>(ranks));
  std::vector<std::string> errors(static_cast<size_t>(ranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r)
    threads.emplace_back([&, r] {
      try {
        out[size_t(r)] = rank(group.rank(r));
      } catch (const std::exception& e) {
        errors[size_t(r)] = e.what();
        group.abandon(r, e.what());
      }
    });
  for (auto& t : threads) t.join();
  for (const auto& e : errors) REQUIRE(e.empty());
  return out;
}

}  // namespace haze::test::parallel
