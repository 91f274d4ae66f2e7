// haze-train-fmnist: trains a class-conditional UNet on Fashion-MNIST.
//
//   haze-train-fmnist --preset demo --checkpoint out/fmnist.safetensors
//   haze-train-fmnist --resume --checkpoint out/fmnist.safetensors --steps 3000
//   mpirun -np 2 haze-train-fmnist ...     (a build with HAZE_MPI: data-parallel, --batch per rank,
//                                           or --global-batch split across the ranks)
//
// A progress bar on a terminal, log lines otherwise; a CSV log and a loss
// curve; a checkpoint every --checkpoint-every steps, at the end, and on
// Ctrl-C. A NaN loss stops the run with the step number and leaves the last
// checkpoint as it was. Under mpirun, rank 0 alone writes and prints; the
// ranks stop together (Ctrl-C, the time budget), and an error on any rank
// ends them all.
#include <haze/haze.hpp>
#include <haze/io/checkpoint.hpp>
#include <haze/io/csv_log.hpp>
#include <haze/io/plot.hpp>
#include <haze/io/png.hpp>
#include <haze/io/progress.hpp>
#include <haze/nn/init.hpp>
#include <haze/nn/unet.hpp>
#include <haze/sample/by_name.hpp>

#include <chrono>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>

#include "../common/cli.hpp"
#include "../common/ranks.hpp"
#include "data.hpp"
#include "presets.hpp"

namespace {

namespace fs = std::filesystem;
using namespace haze;

struct Flags {
  std::string data = fashion_mnist::default_data_dir;
  std::string preset = "demo";
  std::optional<int64_t> steps, batch, global_batch, warmup;  // unset: the preset's
  std::optional<double> lr;
  int64_t limit = 0, checkpoint_every = 500;
  double minutes = 0, rank_timeout = 300, min_snr = 5, label_dropout = 0.1, ema_decay = 0.9995, clip = 1.0;
  int accumulation = 1;
  std::string schedule = "linear", prediction = "epsilon", decay = "cosine", backend = "cpu";
  int timesteps = 1000;
  std::string checkpoint = "out/fmnist.safetensors", log = "out/train.csv", loss_png = "out/loss.png";
  bool resume = false, any_order_sum = false;
  uint64_t seed = 0;
};

// (step, loss) pairs of a CSV log written by this program.
std::vector<std::pair<double, double>> read_losses(const fs::path& path) {
  std::vector<std::pair<double, double>> out;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    double step, loss;
    char comma;
    if (fields >> step >> comma >> loss) out.emplace_back(step, loss);
  }
  return out;
}

void write_loss_plot(const fs::path& csv, const fs::path& png) {
  const auto losses = read_losses(csv);
  if (losses.size() < 2) return;
  io::PlotSeries raw{.color = {180, 200, 230}}, smooth{.color = {31, 119, 180}};
  // The trend: an exponential moving average of the log loss, bias-corrected
  // (divided by 1 - 0.98^k) so its first points do not lag behind.
  double average = 0, weight = 0;
  for (const auto& [step, loss] : losses) {
    average = 0.98 * average + 0.02 * std::log(loss);
    weight = 0.98 * weight + 0.02;
    raw.x.push_back(step), raw.y.push_back(loss);
    smooth.x.push_back(step), smooth.y.push_back(std::exp(average / weight));
  }
  io::write_png(png, io::line_plot({raw, smooth}, {.width = 800, .height = 450, .log_y = true}));
}

// The batch each rank takes per micro-batch: --batch, or --global-batch
// divided by ranks x accumulation (which must divide it exactly, so that
// the same --global-batch trains on the same items on any rank count).
int64_t per_rank_batch(const Flags& f, int64_t preset_batch, int ranks) {
  if (!f.global_batch) return f.batch.value_or(preset_batch);
  const int64_t shares = int64_t(ranks) * f.accumulation;
  HAZE_REQUIRE(*f.global_batch % shares == 0, "--global-batch ", *f.global_batch, " does not divide into ", ranks,
               " ranks x ", f.accumulation, " micro-batches (choose a multiple of ", shares, ")");
  return *f.global_batch / shares;
}

template <class B, class P>
int train(const Flags& f, examples::Ranks& ranks) {
  const bool writer = ranks.writer();
  const auto say = [&](auto... args) {
    if (writer) std::fprintf(stderr, args...);
  };
  using Model = nn::UNet<float, B>;
  fashion_mnist::Preset preset = fashion_mnist::preset(f.preset);
  std::string model_json = io::unet_config_json(preset.model);
  Schedule schedule = Schedule::make(f.schedule, f.timesteps);
  std::optional<io::Safetensors> resume_from;
  if (f.resume) {
    resume_from = io::load_safetensors(f.checkpoint);
    model_json = io::required_metadata(*resume_from, "haze.model");
    // Checked against the file's tensors before the model is built.
    preset.model = io::read_unet_config<float>(*resume_from, {"", "ema.", "adamw.m.", "adamw.v."});
    schedule = io::schedule_from_json(io::required_metadata(*resume_from, "haze.schedule.json"), f.checkpoint);
  }
  const int64_t steps = f.steps.value_or(preset.steps);
  const train::TrainerOptions options{
      .batch_size = per_rank_batch(f, preset.batch, ranks.size()),
      .accumulation = f.accumulation,
      .lr = {.peak = f.lr.value_or(preset.lr), .warmup_steps = f.warmup.value_or(preset.warmup),
             .decay = train::LrSchedule::decay_by_name(f.decay), .total_steps = steps, .final_ratio = 0.05},
      .adamw = {.weight_decay = 0.01},
      .ema_decay = f.ema_decay,
      .clip_norm = f.clip,
      .min_snr_gamma = f.min_snr,
      .num_classes = fashion_mnist::classes,
      .label_dropout = f.label_dropout,
      .seed = f.seed,
      .deterministic_sum = !f.any_order_sum};
  options.validate();  // flags that clash (a warm-up as long as the run) fail before the data loads

  say("loading Fashion-MNIST from %s\n", f.data.c_str());
  const train::Dataset data = fashion_mnist::load(f.data, "train", f.limit);
  Model model(preset.model);
  nn::init_parameters(model, f.seed);
  train::Trainer<Model, P> trainer(model, schedule, data, options, ranks.communicator());
  if (resume_from) {  // every rank reads the same file
    io::load_checkpoint(*resume_from, trainer, model_json);
    say("resumed from %s at step %lld\n", f.checkpoint.c_str(), (long long)trainer.steps_taken());
  }
  size_t parameter_count = 0;
  for (const auto& p : trainer.parameters()) parameter_count += size_t(p.value->numel());
  say("model %s (%zu parameters), schedule %s, %s prediction, %lld items, batch %lld x %d x %d ranks = %lld\n",
      model_json.c_str(), parameter_count, schedule.description().c_str(), std::string(P::name).c_str(),
      (long long)data.count(), (long long)options.batch_size, options.accumulation, ranks.size(),
      (long long)(options.batch_size * options.accumulation * ranks.size()));

  std::optional<io::CsvLog> log;
  if (writer) log.emplace(f.log, std::vector<std::string>{"step", "loss", "grad_norm", "lr", "seconds", "images_per_second"}, f.resume);
  const std::map<std::string, std::string> extra = {{"haze.dataset", "fashion-mnist"},
                                                    {"haze.preset", f.preset}};
  const auto save = [&] {
    if (writer) io::save_checkpoint(f.checkpoint, trainer, model_json, extra);
  };
  // Whether any rank was asked to stop: they stop at the same step.
  const auto any_rank = [&](bool mine) {
    double flag[1] = {mine ? 1.0 : 0.0};
    ranks.communicator().sum_in_rank_order(std::span<double>(flag));
    return flag[0] > 0;
  };

  io::Progress progress(steps);  // (updated on the writer only)
  const auto start = std::chrono::steady_clock::now();
  const auto elapsed_minutes = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / 60;
  };
  std::string stopped_by;
  try {
    while (trainer.steps_taken() < steps) {
      const train::StepReport r = trainer.step();
      const double rate = double(r.items) / r.seconds;
      if (writer) {
        log->row({double(r.step), r.loss, r.grad_norm, r.lr, r.seconds, rate});
        progress.update(r.step, r.loss, rate);
      }
      if (f.checkpoint_every > 0 && r.step % f.checkpoint_every == 0) save();
      if (any_rank(examples::stop_requested)) { stopped_by = "interrupted"; break; }
      if (any_rank(f.minutes > 0 && elapsed_minutes() >= f.minutes)) { stopped_by = "time budget reached"; break; }
    }
  } catch (const std::exception& e) {
    progress.finish();  // ends the bar's line before the message
    throw Error(std::string(e.what()) + "; the last good checkpoint, if any, is unchanged: " + f.checkpoint);
  }
  progress.finish();
  save();
  if (!writer) return 0;
  log.reset();  // flushed before the plot reads it
  write_loss_plot(f.log, f.loss_png);
  say("%s at step %lld after %.1f min; checkpoint %s, log %s, loss curve %s\n",
      stopped_by.empty() ? "finished" : stopped_by.c_str(), (long long)trainer.steps_taken(), elapsed_minutes(),
      f.checkpoint.c_str(), f.log.c_str(), f.loss_png.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  examples::Ranks ranks(argc, argv);
  Flags f;
  CLI::App app{"Train a class-conditional diffusion UNet on Fashion-MNIST (haze)", "haze-train-fmnist"};
  using examples::at_least, examples::in_range, examples::known;
  app.add_option("--data", f.data, "folder with the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--preset", f.preset, "model and training preset: demo or full")
      ->capture_default_str()
      ->check(known(fashion_mnist::preset));
  app.add_option("--steps", f.steps, "optimizer steps (default: the preset's)")->check(at_least(1));
  app.add_option("--minutes", f.minutes, "stop (and save) after this much wall time; 0: no limit")
      ->check(at_least(0));
  auto* batch = app.add_option("--batch", f.batch, "batch size of each rank (default: the preset's)")
                    ->check(at_least(1));
  app.add_option("--global-batch", f.global_batch,
                 "items per optimizer step over all ranks and micro-batches (instead of --batch)")
      ->check(at_least(1))
      ->excludes(batch);
  app.add_option("--accumulation", f.accumulation, "micro-batches per optimizer step")
      ->capture_default_str()
      ->check(at_least(1));
  app.add_option("--lr", f.lr, "peak learning rate (default: the preset's)")->check(examples::positive());
  app.add_option("--warmup", f.warmup, "learning-rate warm-up steps (default: the preset's)")->check(at_least(0));
  app.add_option("--decay", f.decay, "learning-rate decay: cosine or constant")
      ->capture_default_str()
      ->check(known(train::LrSchedule::decay_by_name));
  app.add_option("--schedule", f.schedule, "noise schedule: linear, scaled_linear, cosine, sigmoid, sigmoid_beta")
      ->capture_default_str()
      ->check(known([](const std::string& kind) { (void)Schedule::make(kind, 1000); }));
  app.add_option("--timesteps", f.timesteps, "diffusion steps T")
      ->capture_default_str()
      ->check(in_range(1, Schedule::max_steps));
  app.add_option("--prediction", f.prediction, "epsilon, sample or velocity")
      ->capture_default_str()
      ->check(known([](const std::string& name) { sample::with_prediction(name, [](auto) {}); }));
  app.add_option("--min-snr", f.min_snr, "Min-SNR-gamma loss weight; 0: off")
      ->capture_default_str()
      ->check(at_least(0));
  app.add_option("--label-dropout", f.label_dropout, "probability of the null class (for guidance)")
      ->capture_default_str()
      ->check(in_range(0, 1));
  app.add_option("--ema-decay", f.ema_decay, "largest EMA decay")->capture_default_str()->check(in_range(0, 1));
  app.add_option("--clip", f.clip, "global gradient-norm cap; 0: off")->capture_default_str()->check(at_least(0));
  app.add_option("--limit", f.limit, "use only the first N training images; 0: all")->check(at_least(0));
  app.add_option("--checkpoint", f.checkpoint, "checkpoint file (written atomically)")->capture_default_str();
  app.add_option("--checkpoint-every", f.checkpoint_every, "save every N steps; 0: only at the end")
      ->capture_default_str()
      ->check(at_least(0));
  app.add_flag("--resume", f.resume, "continue from --checkpoint (its model and schedule)");
  app.add_flag("--any-order-sum", f.any_order_sum,
               "under mpirun: sum gradients with MPI_Allreduce (faster; the bits then depend on the rank count)");
  app.add_option("--rank-timeout", f.rank_timeout,
                 "under mpirun: seconds a rank waits for the others in a collective before the job fails")
      ->capture_default_str()
      ->check(in_range(1, 7 * 24 * 3600));
  app.add_option("--log", f.log, "CSV training log")->capture_default_str();
  app.add_option("--loss-png", f.loss_png, "loss curve picture")->capture_default_str();
  app.add_option("--seed", f.seed, "seed of the initialisation and all training randomness")
      ->capture_default_str()
      ->check(at_least(0));
  app.add_option("--backend", f.backend, "cpu, or device in a build with a device system")
      ->capture_default_str()
      ->check(known(examples::require_backend));
  return ranks.finish(examples::run_reporting_errors(app, argc, argv, [&] {
    ranks.require_transport();
    ranks.set_timeout(std::chrono::milliseconds(int64_t(f.rank_timeout * 1000)));
    if (ranks.writer())
      examples::require_writable({{"--checkpoint", f.checkpoint}, {"--log", f.log}, {"--loss-png", f.loss_png}});
    examples::install_stop_handler();  // from here on Ctrl-C means: finish the step, save, exit
    return examples::with_backend(f.backend, [&]<class B>() {
      return sample::with_prediction(f.prediction, [&]<class P>(P) { return train<B, P>(f, ranks); });
    });
  }));
}
