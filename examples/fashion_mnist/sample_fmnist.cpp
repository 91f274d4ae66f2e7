// haze-sample: draws images from a haze-train-fmnist checkpoint.
//
//   haze-sample --checkpoint out/fmnist.safetensors --sampler dpmpp2m --steps 25
//     --guidance 3 --n 100 --out out/samples.png --samples out/samples.safetensors
//
// Writes a PNG grid, one row per class (or all of --class), and the raw
// samples as safetensors: "samples" float32 [N, 1, 32, 32] in [-1, 1] and
// "labels" int64 [N]. Uses the EMA weights unless --raw-weights.
#include <haze/haze.hpp>
#include <haze/io/checkpoint.hpp>
#include <haze/io/png.hpp>
#include <haze/io/progress.hpp>
#include <haze/nn/unet.hpp>
#include <haze/sample/by_name.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "../common/cli.hpp"
#include "data.hpp"
#include "guided_denoiser.hpp"

namespace {

using namespace haze;

struct Flags {
  std::string checkpoint = "out/fmnist.safetensors", sampler = "dpmpp2m", backend = "cpu";
  std::string out = "out/samples.png", samples = "";
  int steps = 25;
  double guidance = 3.0;
  uint64_t seed = 0;
  int64_t n = 100, batch = 100;
  int label = -1;
  bool raw_weights = false, no_clip = false;
};

template <class B, class P>
int sample_images(const Flags& f, const io::Safetensors& file, const nn::UNetConfig& config, const Schedule& schedule) {
  nn::UNet<float, B> model(config);
  io::load_weights(file, model, !f.raw_weights);
  const int64_t classes = config.num_classes;
  HAZE_REQUIRE(f.label < classes, "--class ", f.label, " but the model has ", classes, " classes");
  // Labels: --class for all, else class k for the k-th of `classes` equal rows.
  std::vector<int64_t> labels(size_t(f.n));
  for (int64_t i = 0; i < f.n; ++i)
    labels[size_t(i)] = classes == 0 ? 0 : f.label >= 0 ? f.label : (i * classes) / f.n;
  const int64_t pixels = config.in_channels * fashion_mnist::image_size * fashion_mnist::image_size;
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
    Tensor<float, B> x({count, config.in_channels, fashion_mnist::image_size, fashion_mnist::image_size});
    randn(x, gen);
    const std::vector<float> out =
        sample::run_sampler<P>(f.sampler, schedule, f.steps, denoiser, std::move(x), gen, !f.no_clip).to_host();
    for (float v : out) images.push_back(std::clamp(v, -1.0f, 1.0f));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    progress.update(first + count, std::nan(""), double(first + count) / seconds);  // no loss while sampling
  }
  progress.finish();

  const int64_t columns = f.label >= 0 || classes == 0 ? int64_t(std::ceil(std::sqrt(double(f.n)))) : std::max<int64_t>(1, f.n / classes);
  io::write_png(f.out, io::image_grid(images, f.n, config.in_channels, fashion_mnist::image_size,
                                      fashion_mnist::image_size, columns));
  std::fprintf(stderr, "wrote %s (%lld samples, %s, %d steps, guidance %g)\n", f.out.c_str(), (long long)f.n,
               f.sampler.c_str(), f.steps, f.guidance);
  if (!f.samples.empty()) {
    io::Safetensors raw;
    raw.metadata = {{"haze.checkpoint", f.checkpoint}, {"haze.sampler", f.sampler},
                    {"haze.steps", std::to_string(f.steps)}, {"haze.guidance", std::to_string(f.guidance)},
                    {"haze.seed", std::to_string(f.seed)}};
    raw.add(io::TensorRecord::from<float>(
        "samples", {f.n, config.in_channels, fashion_mnist::image_size, fashion_mnist::image_size}, images));
    raw.add(io::TensorRecord::from<int64_t>("labels", {f.n}, labels));
    io::save_safetensors(f.samples, raw);
    std::fprintf(stderr, "wrote %s\n", f.samples.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Sample images from a haze Fashion-MNIST checkpoint", "haze-sample"};
  using examples::at_least;
  app.add_option("--checkpoint", f.checkpoint, "checkpoint written by haze-train-fmnist")->capture_default_str();
  app.add_option("--sampler", f.sampler, "ddpm, ddim, euler, euler_a, heun, dpmpp2m or sde")
      ->capture_default_str()
      ->check(examples::known(examples::require_sampler));
  app.add_option("--steps", f.steps, "sampling steps (0: every training timestep, where allowed)")
      ->capture_default_str()
      ->check(at_least(0));
  app.add_option("--guidance", f.guidance, "classifier-free guidance scale (1: none)")
      ->capture_default_str()
      ->check(at_least(0));
  app.add_option("--seed", f.seed, "seed of the starting noise and any sampler noise")
      ->capture_default_str()
      ->check(at_least(0));
  app.add_option("--n", f.n, "number of samples")->capture_default_str()->check(at_least(1));
  app.add_option("--batch", f.batch, "samples per network call")->capture_default_str()->check(at_least(1));
  app.add_option("--class", f.label, "sample only this class (default: every class, one row each)")
      ->check(at_least(0));
  app.add_option("--out", f.out, "PNG grid")->capture_default_str();
  app.add_option("--samples", f.samples, "also write the raw samples and labels as safetensors");
  app.add_flag("--raw-weights", f.raw_weights, "use the raw weights instead of the EMA");
  app.add_flag("--no-clip", f.no_clip, "do not clamp each step's x0 estimate to [-1, 1]");
  app.add_option("--backend", f.backend, "cpu, or device in a build with a device system")
      ->capture_default_str()
      ->check(examples::known(examples::require_backend));
  return examples::run_reporting_errors(app, argc, argv, [&] {
    examples::require_writable({{"--out", f.out}});
    if (!f.samples.empty()) examples::require_writable({{"--samples", f.samples}});
    const io::Safetensors file = io::load_safetensors(f.checkpoint);
    // Checked against the file's tensors before the model is built.
    const nn::UNetConfig config = io::read_unet_config<float>(file, {f.raw_weights ? "" : "ema."});
    const Schedule schedule = io::schedule_from_json(io::required_metadata(file, "haze.schedule.json"), f.checkpoint);
    const std::string& prediction = io::required_prediction(file);
    return examples::with_backend(f.backend, [&]<class B>() {
      return sample::with_prediction(prediction, [&]<class P>(P) { return sample_images<B, P>(f, file, config, schedule); });
    });
  });
}
