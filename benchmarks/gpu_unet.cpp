// The GPU rows of issue 13, without Google Benchmark (the lent GPU machine
// has no Debian packages): one measurement per process, printed as one
// JSON line, for benchmarks/gpu_vs_torch.py to set beside PyTorch eager.
//   gpu_unet train BATCH SECONDS   Trainer::step of the cifar preset
//                                  (upload, noise, forward, loss, backward,
//                                  clipping, AdamW + EMA): images per second
//   gpu_unet ddim BATCH            sample::Ddim, 50 steps from noise:
//                                  milliseconds per run and images per second
// Both report the device's peak bytes in tensors (memory_stats: what
// torch.cuda.max_memory_allocated counts on the other side). TF32 stays
// off unless HAZE_TF32=1. Built by nvcc as gpu_unet.cu; on the host
// (Device on OpenMP) it runs too, slowly: a smoke test only.
#include <haze/haze.hpp>
#include <haze/nn/unet.hpp>
#include <haze/sample/ddim.hpp>
#include <haze/train/trainer.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using B = haze::backend::Device;
using Tensor = haze::Tensor<float, B>;
namespace nn = haze::nn;
using Clock = std::chrono::steady_clock;

void initialise(nn::UNet<float, B>& unet) {
  haze::Generator gen{1};
  for (auto& p : nn::parameters_of(unet)) {
    haze::randn(*p.value, gen);
    haze::ops::scale(*p.value, 0.05f);
  }
}

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

int train(int64_t batch, double seconds) {
  const auto config = nn::UNetConfig::cifar();
  nn::UNet<float, B> unet(config);
  initialise(unet);
  const int64_t items = 2 * batch, pixels = config.in_channels * 32 * 32;
  haze::train::Dataset data{{config.in_channels, 32, 32}, std::vector<float>(size_t(items * pixels)), {}};
  haze::Generator gen{2};
  for (float& v : data.values) v = float(haze::next_uniform(gen)) * 2 - 1;
  haze::train::Trainer<nn::UNet<float, B>, haze::predict::Epsilon> trainer(
      unet, haze::Schedule::make("linear", 1000), data, {.batch_size = batch, .lr = {.peak = 1e-4}});
  trainer.step();  // warm-up: caches, cuDNN's algorithm choices
  trainer.step();
  int steps = 0;
  const auto start = Clock::now();
  while (seconds_since(start) < seconds || steps < 3) {
    trainer.step();  // ends in the step's one read back: the device is done
    ++steps;
  }
  const double elapsed = seconds_since(start);
  std::printf("{\"row\": \"train\", \"batch\": %lld, \"ips\": %.3f, \"peak_mb\": %.1f}\n", (long long)batch,
              double(steps * batch) / elapsed, double(haze::backend::memory_stats<B>().peak_bytes.load()) / 1e6);
  return 0;
}

int ddim(int64_t batch) {
  const auto config = nn::UNetConfig::cifar();
  nn::UNet<float, B> unet(config);
  initialise(unet);
  const haze::sample::Ddim<> sampler(haze::Schedule::make("linear", 1000), {.steps = 50, .clip_x0 = true});
  std::vector<double> t(static_cast<size_t>(batch));
  const auto denoiser = [&](const Tensor& x, double timestep) {
    std::fill(t.begin(), t.end(), timestep);
    return unet.infer(x, t);
  };
  const auto run = [&] {
    haze::Generator gen{4};
    Tensor x({batch, config.in_channels, 32, 32});
    haze::randn(x, gen);
    const Tensor images = sampler.run(denoiser, std::move(x), gen);
    float first = 0;
    B::copy_to_host(&first, images.data(), 1);  // waits for the last step
    return first;
  };
  run();  // warm-up
  const int runs = batch == 1 ? 3 : 1;
  const auto start = Clock::now();
  for (int r = 0; r < runs; ++r) run();
  const double per_run = seconds_since(start) / runs;
  std::printf("{\"row\": \"ddim\", \"batch\": %lld, \"ms\": %.3f, \"ips\": %.3f, \"peak_mb\": %.1f}\n",
              (long long)batch, per_run * 1e3, double(batch) / per_run,
              double(haze::backend::memory_stats<B>().peak_bytes.load()) / 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string row = argc > 1 ? argv[1] : "";
  if ((row != "train" && row != "ddim") || argc < 3) {
    std::fprintf(stderr, "usage: gpu_unet train BATCH [SECONDS] | gpu_unet ddim BATCH\n");
    return 2;
  }
  const char* tf32 = std::getenv("HAZE_TF32");
  haze::backend::allow_tf32(tf32 && std::string(tf32) == "1");
  try {
    const int64_t batch = std::stoll(argv[2]);
    return row == "train" ? train(batch, argc > 3 ? std::stod(argv[3]) : 5.0) : ddim(batch);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_unet: %s\n", e.what());
    return 1;
  }
}
