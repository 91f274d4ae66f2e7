// Throughput of the backend primitives on one backend: the Device backend
// when a device system is configured, else Cpu. Shapes are the ones a U-Net
// step produces. Each benchmark allocates its tensors once, outside the
// timed loop; results are read back once per iteration on the Device backend
// (a synchronisation on CUDA), so GPU timings include kernel completion.
#include <benchmark/benchmark.h>

#include <haze/haze.hpp>

namespace {

#if defined(THRUST_DEVICE_SYSTEM) || defined(__CUDACC__)
using B = haze::backend::Device;
#else
using B = haze::backend::Cpu;
#endif
using Tensor = haze::Tensor<float, B>;

Tensor normal(haze::Shape shape, uint64_t seed) {
  Tensor t(shape);
  haze::Generator gen{seed};
  haze::randn(t, gen);
  return t;
}

// Make the benchmark wait for the backend's work (a device-to-host copy of
// one element).
void sync(const Tensor& t) {
  float value;
  B::copy_to_host(&value, t.data(), 1);
  benchmark::DoNotOptimize(value);
}

// C[M, N] = A[M, K] B[K, N]: args M, N, K.
void BM_Matmul(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const Tensor a = normal({M, K}, 1), b = normal({K, N}, 2);
  Tensor c({M, N});
  for (auto _ : state) {
    haze::ops::matmul(a, b, c);
    sync(c);
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * M * N * K * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Matmul)->Args({256, 1024, 288})->Args({512, 512, 512})->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Randn(benchmark::State& state) {
  Tensor x({state.range(0)});
  haze::Generator gen{3};
  for (auto _ : state) {
    haze::randn(x, gen);
    sync(x);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_Randn)->Arg(1 << 22)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Add(benchmark::State& state) {
  const Tensor a = normal({state.range(0)}, 4), b = normal({state.range(0)}, 5);
  Tensor c({state.range(0)});
  for (auto _ : state) {
    haze::ops::add(a, b, c);
    sync(c);
  }
  state.SetBytesProcessed(state.iterations() * state.range(0) * 3 * int64_t(sizeof(float)));
}
BENCHMARK(BM_Add)->Arg(1 << 22)->Unit(benchmark::kMillisecond)->UseRealTime();

// GroupNorm-style statistics: x [N, C, H, W] = [16, 128, 32, 32], 32 groups.
void BM_SumPerGroup(benchmark::State& state) {
  const Tensor x = normal({16, 128, 32, 32}, 6);
  Tensor sums({16, 32});
  for (auto _ : state) {
    haze::ops::sum_per_group(x, 32, sums);
    sync(sums);
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * int64_t(sizeof(float)));
}
BENCHMARK(BM_SumPerGroup)->Unit(benchmark::kMillisecond)->UseRealTime();

// Conv bias gradient: x [16, 128, 32, 32] summed per channel.
void BM_SumPerChannel(benchmark::State& state) {
  const Tensor x = normal({16, 128, 32, 32}, 7);
  Tensor sums({128});
  for (auto _ : state) {
    haze::ops::sum_per_channel(x, sums);
    sync(sums);
  }
  state.SetBytesProcessed(state.iterations() * x.numel() * int64_t(sizeof(float)));
}
BENCHMARK(BM_SumPerChannel)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
