// haze-toy2d: diffusion on 2-D points with an MLP denoiser: trains, samples,
// plots the samples over the data, and scores them with the sliced
// Wasserstein distance beside the data-vs-data floor.
//
//   haze-toy2d --data moons --seconds 120 --out out/toy2d_moons.png
#include <haze/haze.hpp>
#include <haze/io/plot.hpp>
#include <haze/io/png.hpp>
#include <haze/io/progress.hpp>
#include <haze/metrics/sliced_wasserstein.hpp>
#include <haze/nn/init.hpp>
#include <haze/nn/mlp_denoiser.hpp>
#include <haze/sample/by_name.hpp>
#include <haze/train/trainer.hpp>

#include <algorithm>
#include <chrono>

#include "../common/cli.hpp"
#include "toy_data.hpp"

namespace {

using namespace haze;

struct Flags {
  std::string data = "moons", sampler = "ddpm", out = "out/toy2d.png";
  int64_t steps = 6000, batch = 256, points = 20000, samples = 4000, width = 128;
  int depth = 3, sample_steps = 200;
  double seconds = 120, lr = 2e-3;
  uint64_t seed = 0;
};

int run(const Flags& f) {
  using B = backend::Cpu;
  using Model = nn::MlpDenoiser<float, B>;
  train::Dataset data;
  data.item_shape = {2};
  for (double v : toy2d::sample_points(f.data, f.points, f.seed)) data.values.push_back(float(v));
  Model model(2, f.width, f.depth);
  nn::init_parameters(model, f.seed);
  const Schedule schedule = Schedule::make("cosine", 1000);
  train::Trainer<Model, predict::Epsilon> trainer(
      model, schedule, data,
      {.batch_size = f.batch,
       .lr = {.peak = f.lr,
              .warmup_steps = std::min<int64_t>(100, f.steps / 10),  // shorter than any run
              .decay = train::LrSchedule::Decay::Cosine,
              .total_steps = f.steps},
       .ema_decay = 0.999,
       .seed = f.seed});
  io::Progress progress(f.steps);
  const auto start = std::chrono::steady_clock::now();
  const auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  while (trainer.steps_taken() < f.steps && seconds() < f.seconds) {
    const train::StepReport r = trainer.step();
    progress.update(r.step, r.loss, double(r.items) / r.seconds);
  }
  progress.finish();
  const double train_seconds = seconds();
  trainer.ema().copy_to(nn::parameters_of(model));

  Generator gen{f.seed + 1};
  Tensor<float, B> x({f.samples, 2});
  randn(x, gen);
  auto denoiser = [&](const Tensor<float, B>& x_t, double t) {
    return model.infer(x_t, std::vector<double>(size_t(x_t.dim(0)), t));
  };
  const std::vector<float> out =
      sample::run_sampler<predict::Epsilon>(f.sampler, schedule, f.sample_steps, denoiser, std::move(x), gen).to_host();
  const std::vector<double> generated(out.begin(), out.end());
  const std::vector<double> fresh = toy2d::sample_points(f.data, f.samples, f.seed + 101);
  const double swd = metrics::sliced_wasserstein(generated, fresh, 2, 256, 7);
  // The floor: the same distance for real data, averaged over four fresh
  // sets (one pair alone varies by 2x on the swiss roll).
  double floor = 0;
  for (uint64_t k = 0; k < 4; ++k)
    floor += metrics::sliced_wasserstein(toy2d::sample_points(f.data, f.samples, f.seed + 202 + k), fresh, 2, 256, 7) / 4;
  std::printf("%s: %lld steps in %.0f s; sliced Wasserstein distance %.4f, data-vs-data floor %.4f, ratio %.2f\n",
              f.data.c_str(), (long long)trainer.steps_taken(), train_seconds, swd, floor, swd / floor);

  io::ScatterSeries real_points{.color = {190, 190, 190}}, sample_points{.color = {214, 39, 40}};
  for (size_t i = 0; i + 1 < fresh.size(); i += 2) real_points.x.push_back(fresh[i]), real_points.y.push_back(fresh[i + 1]);
  for (size_t i = 0; i + 1 < generated.size(); i += 2)
    sample_points.x.push_back(generated[i]), sample_points.y.push_back(generated[i + 1]);
  io::write_png(f.out, io::scatter_plot({real_points, sample_points},
                                       {.width = 600, .height = 600, .x_range = std::pair{-3.0, 3.0},
                                        .y_range = std::pair{-3.0, 3.0}}));
  std::fprintf(stderr, "wrote %s (gray: data, red: samples)\n", f.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Diffusion on 2-D toy data with an MLP denoiser (haze)", "haze-toy2d"};
  using examples::at_least;
  app.add_option("--data", f.data, "moons, gaussians or swissroll")
      ->capture_default_str()
      ->check(examples::known([](const std::string& name) { toy2d::sample_points(name, 1, 0); }));
  app.add_option("--steps", f.steps, "optimizer steps at most")->capture_default_str()->check(at_least(1));
  app.add_option("--seconds", f.seconds, "training time budget")->capture_default_str()->check(examples::positive());
  app.add_option("--batch", f.batch, "batch size")->capture_default_str()->check(at_least(1));
  app.add_option("--lr", f.lr, "peak learning rate")->capture_default_str()->check(examples::positive());
  app.add_option("--width", f.width, "MLP width")->capture_default_str()->check(at_least(1));
  app.add_option("--depth", f.depth, "residual blocks")->capture_default_str()->check(at_least(1));
  app.add_option("--sampler", f.sampler, "ddpm, ddim, euler, euler_a, heun, dpmpp2m or sde")
      ->capture_default_str()
      ->check(examples::known(examples::require_sampler));
  app.add_option("--sample-steps", f.sample_steps, "sampling steps (0: every training timestep, where allowed)")
      ->capture_default_str()
      ->check(at_least(0));
  app.add_option("--samples", f.samples, "points to sample and score")->capture_default_str()->check(at_least(1));
  app.add_option("--out", f.out, "scatter plot PNG")->capture_default_str();
  app.add_option("--seed", f.seed, "seed")->capture_default_str()->check(at_least(0));
  return examples::run_reporting_errors(app, argc, argv, [&] {
    examples::require_writable({{"--out", f.out}});
    return run(f);
  });
}
