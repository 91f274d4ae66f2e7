// UNet speed on the Cpu backend (or the Device backend when a device
// system is configured), for the small and cifar presets:
//  - BM_UNetForward: inference forward, batch 16 and 64;
//  - BM_UNetTrainStep: forward + backward into zeroed gradients;
//  - BM_UNetOptimizerStep: a whole training step: forward, the MSE loss's
//    gradient, backward, AdamW and the EMA update;
//  - BM_UNetDdim50: DDIM with 50 steps from noise to 64 images.
// Counters: images per second and, for the training step after warm-up,
// tensors made per step and how many of them needed fresh memory (0: all
// came from freed blocks). benchmarks/cpu_vs_diffusers.py runs it beside
// diffusers' UNet2DModel in PyTorch.
#include <benchmark/benchmark.h>

#include <haze/haze.hpp>
#include <haze/nn/unet.hpp>
#include <haze/sample/ddim.hpp>
#include <haze/train/adamw.hpp>
#include <haze/train/ema.hpp>

namespace {

#if defined(THRUST_DEVICE_SYSTEM) || defined(__CUDACC__)
using B = haze::backend::Device;
#else
using B = haze::backend::Cpu;
#endif
using Tensor = haze::Tensor<float, B>;
namespace nn = haze::nn;

nn::UNetConfig preset(int64_t which) { return which == 0 ? nn::UNetConfig::small() : nn::UNetConfig::cifar(); }

void initialise(nn::UNet<float, B>& unet) {
  haze::Generator gen{1};
  for (auto& p : nn::parameters_of(unet)) {
    haze::randn(*p.value, gen);
    haze::ops::scale(*p.value, 0.05f);
  }
}

struct Inputs {
  Tensor x;
  std::vector<double> t;
  Inputs(const nn::UNetConfig& c, int64_t batch) : x({batch, c.in_channels, 32, 32}), t(batch) {
    haze::Generator gen{2};
    haze::randn(x, gen);
    for (int64_t i = 0; i < batch; ++i) t[i] = double((i * 37) % 1000);
  }
};

void sync(const Tensor& t) {
  float v;
  B::copy_to_host(&v, t.data(), 1);
  benchmark::DoNotOptimize(v);
}

void BM_UNetForward(benchmark::State& state) {
  const auto config = preset(state.range(0));
  nn::UNet<float, B> unet(config);
  initialise(unet);
  const Inputs in(config, state.range(1));
  for (auto _ : state) sync(unet.infer(in.x, in.t));
  state.counters["img/s"] = benchmark::Counter(double(state.iterations() * state.range(1)), benchmark::Counter::kIsRate);
}

void BM_UNetTrainStep(benchmark::State& state) {
  const auto config = preset(state.range(0));
  nn::UNet<float, B> unet(config);
  initialise(unet);
  const Inputs in(config, state.range(1));
  Tensor dy(in.x.shape());
  haze::Generator gen{3};
  haze::randn(dy, gen);
  auto& stats = haze::backend::memory_stats<B>();
  const auto step = [&] {
    nn::zero_grad(unet);
    const Tensor y = unet.forward(in.x, in.t);
    sync(unet.backward(dy));
  };
  step();  // warm-up: the block cache fills here
  step();
  const int64_t tensors = stats.allocations.load(), fresh = stats.fresh_allocations.load();
  step();
  const int64_t tensors_per_step = stats.allocations.load() - tensors;
  const int64_t fresh_per_step = stats.fresh_allocations.load() - fresh;
  for (auto _ : state) step();
  state.counters["img/s"] = benchmark::Counter(double(state.iterations() * state.range(1)), benchmark::Counter::kIsRate);
  state.counters["tensors/step"] = double(tensors_per_step);
  state.counters["fresh allocs/step"] = double(fresh_per_step);
  state.counters["peak MB"] = double(stats.peak_bytes.load()) / 1e6;
}

void BM_UNetOptimizerStep(benchmark::State& state) {
  const auto config = preset(state.range(0));
  nn::UNet<float, B> unet(config);
  initialise(unet);
  const Inputs in(config, state.range(1));
  Tensor target(in.x.shape()), dy(in.x.shape());
  haze::Generator gen{3};
  haze::randn(target, gen);
  const auto params = nn::parameters_of(unet);
  haze::train::AdamW<float, B> adamw(params, {.weight_decay = 0.01});
  haze::train::Ema<float, B> ema(params, 0.9999);
  int64_t step = 0;
  const auto optimizer_step = [&] {
    nn::zero_grad(unet);
    const Tensor y = unet.forward(in.x, in.t);
    haze::ops::lincomb(dy, 2.0 / double(y.numel()), y, -2.0 / double(y.numel()), target);  // d mean((y - target)^2)
    unet.backward(dy);
    adamw.step(1e-4);
    ema.update(params, ++step);
    sync(ema.shadow(0));
  };
  optimizer_step();
  for (auto _ : state) optimizer_step();
  state.counters["img/s"] = benchmark::Counter(double(state.iterations() * state.range(1)), benchmark::Counter::kIsRate);
}

void BM_UNetDdim50(benchmark::State& state) {
  const auto config = preset(state.range(0));
  nn::UNet<float, B> unet(config);
  initialise(unet);
  const int64_t batch = state.range(1);
  const haze::sample::Ddim<> ddim(haze::Schedule::make("linear", 1000), {.steps = 50, .clip_x0 = true});
  std::vector<double> t(batch);
  const auto denoiser = [&](const Tensor& x, double timestep) {
    std::fill(t.begin(), t.end(), timestep);
    return unet.infer(x, t);
  };
  for (auto _ : state) {
    haze::Generator gen{4};
    Tensor x({batch, config.in_channels, 32, 32});
    haze::randn(x, gen);
    sync(ddim.run(denoiser, std::move(x), gen));
  }
  state.counters["img/s"] = benchmark::Counter(double(state.iterations() * batch), benchmark::Counter::kIsRate);
}

// Args: preset (0 = small, 1 = cifar), batch.
BENCHMARK(BM_UNetForward)->Args({0, 16})->Args({0, 64})->Args({1, 16})->Args({1, 64})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_UNetTrainStep)->Args({0, 16})->Args({0, 64})->Args({1, 16})->Args({1, 64})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_UNetOptimizerStep)->Args({0, 16})->Args({0, 64})->Args({1, 16})->Args({1, 64})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_UNetDdim50)->Args({0, 64})->Args({1, 64})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.1);

}  // namespace

BENCHMARK_MAIN();
