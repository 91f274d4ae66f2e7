// UNet speed on the Cpu backend (or the Device backend when a device
// system is configured): inference forward and a training step (forward +
// backward into zeroed gradients; the optimizer is not included) for the
// small and cifar presets at batch 16 and 64. Counters: images per second
// and, for the training step after warm-up, tensors made per step and how
// many of them needed fresh memory (0: all came from freed blocks).
// benchmarks/unet_vs_torch.py runs it beside the same model in PyTorch.
#include <benchmark/benchmark.h>

#include <haze/haze.hpp>
#include <haze/nn/unet.hpp>

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

// Args: preset (0 = small, 1 = cifar), batch.
BENCHMARK(BM_UNetForward)->Args({0, 16})->Args({0, 64})->Args({1, 16})->Args({1, 64})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_UNetTrainStep)->Args({0, 16})->Args({0, 64})->Args({1, 16})->Args({1, 64})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
