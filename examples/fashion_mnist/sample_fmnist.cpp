// haze-sample: draws images from a haze-train-fmnist checkpoint, or from a
// diffusers model folder.
//
//   haze-sample --checkpoint out/fmnist.safetensors --sampler dpmpp2m --steps 25
//     --guidance 3 --n 100 --out out/samples.png --samples out/samples.safetensors
//   haze-sample --diffusers ddpm-cifar10-32 --steps 50 --n 16 --out cifar.png
//
// Writes a PNG grid, one row per class (or all of --class), and the raw
// samples as safetensors: "samples" float32 [N, C, H, W] in [-1, 1] and
// "labels" int64 [N]. Uses a checkpoint's EMA weights unless --raw-weights.
// A diffusers folder (config.json, diffusion_pytorch_model.safetensors and
// scheduler_config.json, or a pipeline folder holding them in unet/ and
// scheduler/) gives the image size, the sampler and its settings, the
// prediction type and the clipping; flags given on the command line win.
#include <haze/haze.hpp>
#include <haze/io/checkpoint.hpp>
#include <haze/io/diffusers.hpp>
#include <haze/io/png.hpp>
#include <haze/io/progress.hpp>
#include <haze/nn/unet.hpp>
#include <haze/sample/by_name.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>

#include "../common/cli.hpp"
#include "data.hpp"
#include "guided_denoiser.hpp"

namespace {

using namespace haze;

struct Flags {
  std::string checkpoint = "out/fmnist.safetensors", diffusers, sampler = "dpmpp2m", backend = "cpu";
  std::string out = "out/samples.png", samples = "";
  int steps = 25;
  double guidance = 3.0;
  uint64_t seed = 0;
  int64_t n = 100, batch = 100, size = 0;
  int label = -1;
  bool raw_weights = false, no_clip = false;
};

// What to sample: the model's config and weights, the schedule, and the
// sampler's settings.
struct Source {
  std::string name;  // the checkpoint or folder, for the metadata
  nn::UNetConfig config;
  io::Safetensors weights;
  bool diffusers = false;  // weights are a diffusers state dict
  Schedule schedule = Schedule::make("linear", 1000);
  std::string prediction;
  int64_t height = fashion_mnist::image_size, width = fashion_mnist::image_size;
  sample::SamplerSettings settings;
};

template <class B, class P>
int sample_images(const Flags& f, const Source& source) {
  const nn::UNetConfig& config = source.config;
  nn::UNet<float, B> model(config);
  if (source.diffusers) io::load_diffusers_weights(source.weights, model);
  else io::load_weights(source.weights, model, !f.raw_weights);
  const int64_t classes = config.num_classes;
  HAZE_REQUIRE(f.label < classes, "--class ", f.label, " but the model has ", classes, " classes");
  // Labels: --class for all, else class k for the k-th of `classes` equal rows.
  std::vector<int64_t> labels(size_t(f.n));
  for (int64_t i = 0; i < f.n; ++i)
    labels[size_t(i)] = classes == 0 ? 0 : f.label >= 0 ? f.label : (i * classes) / f.n;
  const int64_t pixels = config.in_channels * source.height * source.width;
  std::vector<float> images;
  images.reserve(size_t(f.n * pixels));
  Generator gen{f.seed};
  io::Progress progress(f.n);
  const auto start = std::chrono::steady_clock::now();
  for (int64_t first = 0; first < f.n; first += f.batch) {
    const int64_t count = std::min(f.batch, f.n - first);
    std::vector<int64_t> batch_labels;
    if (classes > 0) batch_labels.assign(labels.begin() + first, labels.begin() + first + count);
    fashion_mnist::GuidedDenoiser<float, B> denoiser(model, batch_labels, f.guidance);
    Tensor<float, B> x({count, config.in_channels, source.height, source.width});
    randn(x, gen);
    const std::vector<float> out =
        sample::run_sampler<P>(f.sampler, source.schedule, source.settings, denoiser, std::move(x), gen).to_host();
    for (float v : out) images.push_back(std::clamp(v, -1.0f, 1.0f));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    progress.update(first + count, std::nan(""), double(first + count) / seconds);  // no loss while sampling
  }
  progress.finish();

  const int64_t columns = f.label >= 0 || classes == 0 ? int64_t(std::ceil(std::sqrt(double(f.n)))) : std::max<int64_t>(1, f.n / classes);
  io::write_png(f.out, io::image_grid(images, f.n, config.in_channels, source.height, source.width, columns));
  std::fprintf(stderr, "wrote %s (%lld samples, %s, %d steps, guidance %g)\n", f.out.c_str(), (long long)f.n,
               f.sampler.c_str(), f.steps, f.guidance);
  if (!f.samples.empty()) {
    io::Safetensors raw;
    raw.metadata = {{source.diffusers ? "haze.diffusers" : "haze.checkpoint", source.name}, {"haze.sampler", f.sampler},
                    {"haze.steps", std::to_string(f.steps)}, {"haze.guidance", std::to_string(f.guidance)},
                    {"haze.seed", std::to_string(f.seed)}};
    raw.add(io::TensorRecord::from<float>("samples", {f.n, config.in_channels, source.height, source.width}, images));
    raw.add(io::TensorRecord::from<int64_t>("labels", {f.n}, labels));
    io::save_safetensors(f.samples, raw);
    std::fprintf(stderr, "wrote %s\n", f.samples.c_str());
  }
  return 0;
}

// A haze checkpoint: the model and schedule from its metadata, haze's
// sampler defaults (Karras sigmas, leading timesteps).
Source checkpoint_source(const Flags& f) {
  Source s;
  s.name = f.checkpoint;
  s.weights = io::load_safetensors(f.checkpoint);
  // Checked against the file's tensors before the model is built.
  s.config = io::read_unet_config<float>(s.weights, {f.raw_weights ? "" : "ema."});
  s.schedule = io::schedule_from_json(io::required_metadata(s.weights, "haze.schedule.json"), f.checkpoint);
  s.prediction = io::required_prediction(s.weights);
  s.settings = {.steps = f.steps, .clip_x0 = !f.no_clip};
  return s;
}

// A diffusers folder: its scheduler's sampler, spacing, clipping and
// prediction, unless the command line says otherwise (`given`).
Source diffusers_source(Flags& f, const std::function<bool(const char*)>& given) {
  const io::DiffusersFolder folder = io::DiffusersFolder::at(f.diffusers);
  HAZE_REQUIRE(!folder.scheduler.empty(), f.diffusers,
               ": no scheduler_config.json (nor scheduler/scheduler_config.json): haze needs the schedule it was "
               "trained with");
  HAZE_REQUIRE(!given("--raw-weights"), "--raw-weights: a diffusers folder holds one set of weights");
  Source s;
  s.name = f.diffusers;
  s.diffusers = true;
  s.weights = folder.load_weights();
  s.config = io::read_diffusers_unet_config(folder.config, s.weights);
  HAZE_REQUIRE(s.config.in_channels == s.config.out_channels, folder.config.string(), ": in_channels ",
               s.config.in_channels, " and out_channels ", s.config.out_channels,
               " differ: the model does not predict what it is given, so it cannot be sampled");
  HAZE_REQUIRE(!s.config.fourier_time, folder.config.string(),
               ": time_embedding_type fourier is a score-SDE model that takes the noise level sigma; haze's samplers "
               "are the variance-preserving ones (it runs such a model's forward, not its sampler)");
  HAZE_REQUIRE(!s.config.takes_class_vectors(), folder.config.string(),
               ": class_embed_type identity takes a class vector per image, which haze-sample has no way to make");
  const io::DiffusersScheduler scheduler = io::read_diffusers_scheduler(folder.scheduler);
  s.schedule = scheduler.schedule;
  s.prediction = scheduler.prediction;
  if (!given("--sampler")) f.sampler = scheduler.sampler;
  if (!given("--guidance")) f.guidance = 1;  // a diffusers class-conditional model need not know a null class
  s.settings = scheduler.settings(f.steps);
  s.settings.clip_x0 = scheduler.clip_sample && !f.no_clip;
  const int64_t size = f.size > 0 ? f.size : s.config.sample_size;
  HAZE_REQUIRE(size > 0, folder.config.string(), ": no sample_size; give the image size with --size");
  s.height = size;
  s.width = f.size > 0 || s.config.sample_width == 0 ? size : s.config.sample_width;
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Sample images from a haze Fashion-MNIST checkpoint or a diffusers model folder", "haze-sample"};
  using examples::at_least;
  auto* checkpoint =
      app.add_option("--checkpoint", f.checkpoint, "checkpoint written by haze-train-fmnist")->capture_default_str();
  app.add_option("--diffusers", f.diffusers,
                 "a diffusers UNet2DModel folder (or a pipeline folder) to sample instead of a checkpoint")
      ->excludes(checkpoint);
  app.add_option("--sampler", f.sampler,
                 "ddpm, ddim, euler, euler_a, heun, dpmpp2m or sde (with --diffusers: its scheduler's)")
      ->capture_default_str()
      ->check(examples::known(examples::require_sampler));
  app.add_option("--steps", f.steps, "sampling steps (0: every training timestep, where allowed)")
      ->capture_default_str()
      ->check(at_least(0));
  app.add_option("--guidance", f.guidance, "classifier-free guidance scale (1: none; with --diffusers: 1)")
      ->capture_default_str()
      ->check(at_least(0));
  app.add_option("--seed", f.seed, "seed of the starting noise and any sampler noise")
      ->capture_default_str()
      ->check(at_least(0));
  app.add_option("--n", f.n, "number of samples")->capture_default_str()->check(at_least(1));
  app.add_option("--batch", f.batch, "samples per network call")->capture_default_str()->check(at_least(1));
  app.add_option("--class", f.label, "sample only this class (default: every class, one row each)")
      ->check(at_least(0));
  app.add_option("--size", f.size, "with --diffusers: the image size (default: the model's sample_size)")
      ->check(at_least(1));
  app.add_option("--out", f.out, "PNG grid")->capture_default_str();
  app.add_option("--samples", f.samples, "also write the raw samples and labels as safetensors");
  app.add_flag("--raw-weights", f.raw_weights, "use a checkpoint's raw weights instead of the EMA");
  app.add_flag("--no-clip", f.no_clip, "do not clamp each step's x0 estimate to [-1, 1]");
  app.add_option("--backend", f.backend, "cpu, or device in a build with a device system")
      ->capture_default_str()
      ->check(examples::known(examples::require_backend));
  return examples::run_reporting_errors(app, argc, argv, [&] {
    examples::require_writable({{"--out", f.out}});
    if (!f.samples.empty()) examples::require_writable({{"--samples", f.samples}});
    HAZE_REQUIRE(f.size == 0 || !f.diffusers.empty(), "--size: only a diffusers folder is sampled at a chosen size");
    const auto given = [&](const char* flag) { return app.count(flag) > 0; };
    const Source source = f.diffusers.empty() ? checkpoint_source(f) : diffusers_source(f, given);
    return examples::with_backend(f.backend, [&]<class B>() {
      return sample::with_prediction(source.prediction, [&]<class P>(P) { return sample_images<B, P>(f, source); });
    });
  });
}
