// What one training step and one sampler step ask of backend::Device
// (backend/device_counters.hpp), for the small and cifar presets: kernel
// launches, host round trips, uploads, tensors and fresh allocations.
// Built on Thrust's OpenMP system (bench_device_step_counts) the counts are
// those a GPU would see, since the same code runs; only the time differs.
// Counts do not depend on the batch (one launch covers every image), so a
// batch of 2 keeps the OpenMP build's naive GEMM quick.
//   training step: Trainer::step (data upload, noise, forward, loss,
//                  backward, clipping, AdamW, EMA), after two warm-up steps;
//   sampler step:  DDIM, (launches of a 12-step run - a 4-step run) / 8.
#include <haze/haze.hpp>
#include <haze/nn/unet.hpp>
#include <haze/sample/ddim.hpp>
#include <haze/train/trainer.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

namespace {

using B = haze::backend::Device;
using Tensor = haze::Tensor<float, B>;
namespace nn = haze::nn;

struct Counts {
  int64_t launches, round_trips, uploads, tensors, fresh;

  static Counts now() {
    const auto& c = haze::backend::device_counters();
    const auto& m = haze::backend::memory_stats<B>();
    return {c.launches.load(), c.round_trips.load(), c.uploads.load(), m.allocations.load(),
            m.fresh_allocations.load()};
  }
  Counts operator-(const Counts& o) const {
    return {launches - o.launches, round_trips - o.round_trips, uploads - o.uploads, tensors - o.tensors,
            fresh - o.fresh};
  }
};

void print(const char* preset, const char* what, const Counts& c, double per) {
  std::printf("%-6s %-14s %10.1f %12.1f %8.1f %8.1f %14.1f\n", preset, what, c.launches / per,
              c.round_trips / per, c.uploads / per, c.tensors / per, c.fresh / per);
}

void count(const char* name, const nn::UNetConfig& config) {
  const int64_t batch = 2, pixels = 32 * 32 * config.in_channels;
  nn::UNet<float, B> unet(config);
  haze::train::Dataset data{{config.in_channels, 32, 32}, std::vector<float>(8 * pixels, 0.25f), {}};
  haze::train::Trainer<nn::UNet<float, B>, haze::predict::Epsilon> trainer(
      unet, haze::Schedule::make("linear", 1000), data, {.batch_size = batch});
  trainer.step();
  trainer.step();
  const Counts before = Counts::now();
  trainer.step();
  print(name, "training step", Counts::now() - before, 1);

  std::vector<double> t(batch);
  const auto denoiser = [&](const Tensor& x, double timestep) {
    std::fill(t.begin(), t.end(), timestep);
    return unet.infer(x, t);
  };
  const auto sample = [&](int steps) {
    const haze::sample::Ddim<> ddim(haze::Schedule::make("linear", 1000), {.steps = steps, .clip_x0 = true});
    haze::Generator gen{4};
    Tensor x({batch, config.in_channels, 32, 32});
    haze::randn(x, gen);
    const Counts start = Counts::now();
    const Tensor images = ddim.run(denoiser, std::move(x), gen);
    return Counts::now() - start;
  };
  sample(4);  // warm-up: both runs' shapes (each sizes its checks by its step count)
  sample(12);
  print(name, "sampler step", sample(12) - sample(4), 8);
}

}  // namespace

int main() {
  std::printf("Device (%s) per step, batch 2\n", std::string(B::name).c_str());
  std::printf("%-6s %-14s %10s %12s %8s %8s %14s\n", "preset", "step", "launches", "round trips", "uploads",
              "tensors", "fresh allocs");
  count("small", nn::UNetConfig::small());
  count("cifar", nn::UNetConfig::cifar());
}
