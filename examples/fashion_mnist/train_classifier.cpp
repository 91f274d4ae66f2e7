// haze-train-classifier: trains the Fashion-MNIST classifier haze-eval uses
// to score samples, and reports its test accuracy.
//
//   haze-train-classifier --out out/classifier.safetensors
#include <haze/haze.hpp>
#include <haze/io/progress.hpp>
#include <haze/io/safetensors.hpp>
#include <haze/nn/cross_entropy.hpp>
#include <haze/nn/init.hpp>
#include <haze/train/adamw.hpp>
#include <haze/train/lr_schedule.hpp>

#include "../common/cli.hpp"
#include "classifier.hpp"
#include "classifier_io.hpp"
#include "data.hpp"

namespace {

using namespace haze;

struct Flags {
  std::string data = fashion_mnist::default_data_dir, out = "out/classifier.safetensors";
  int epochs = 3;
  int64_t batch = 64, limit = 0;
  double lr = 5e-3;
  uint64_t seed = 0;
};

int train_classifier(const Flags& f) {
  using B = backend::Cpu;
  const train::Dataset train_set = fashion_mnist::load(f.data, "train", f.limit);
  const train::Dataset test_set = fashion_mnist::load(f.data, "t10k");
  fashion_mnist::Classifier<float, B> model;
  nn::init_parameters(model, f.seed);
  const auto params = nn::parameters_of(model);
  train::AdamW<float, B> adamw(params, {.weight_decay = 1e-4});
  const int64_t steps_per_epoch = train_set.count() / f.batch, steps = steps_per_epoch * f.epochs;
  HAZE_REQUIRE(steps_per_epoch > 0, "--batch ", f.batch, " is larger than the ", train_set.count(),
               " training images");
  const train::LrSchedule lr{.peak = f.lr, .warmup_steps = std::min<int64_t>(100, steps / 10),
                             .decay = train::LrSchedule::Decay::Cosine, .total_steps = steps, .final_ratio = 0.02};
  lr.validate();
  train::BatchOrder order(train_set.count(), f.seed);
  Tensor<float, B> x(train_set.batch_shape(f.batch)), grad({f.batch, fashion_mnist::classes});
  std::vector<int64_t> labels;
  io::Progress progress(steps);
  for (int64_t step = 1; step <= steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    train_set.gather(order.next(f.batch), x, labels);
    nn::zero_grad(model);
    const double loss = nn::softmax_cross_entropy(model.forward(x), labels, grad);
    HAZE_REQUIRE(std::isfinite(loss), "the classifier's loss is ", loss, " at step ", step);
    model.backward(grad);
    adamw.step(lr.at(step));
    progress.update(step, loss, double(f.batch) / std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  progress.finish();
  const double accuracy = fashion_mnist::accuracy(model, test_set);
  std::printf("test accuracy %.2f%% (%lld images)\n", 100 * accuracy, (long long)test_set.count());
  fashion_mnist::save_classifier(f.out, model, accuracy);
  std::fprintf(stderr, "wrote %s\n", f.out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Train the Fashion-MNIST classifier that scores samples (haze)", "haze-train-classifier"};
  app.add_option("--data", f.data, "folder with the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--out", f.out, "where to write the classifier (safetensors)")->capture_default_str();
  using examples::at_least;
  app.add_option("--epochs", f.epochs, "passes over the training set")->capture_default_str()->check(at_least(1));
  app.add_option("--batch", f.batch, "batch size")->capture_default_str()->check(at_least(1));
  app.add_option("--lr", f.lr, "peak learning rate (AdamW, cosine decay)")
      ->capture_default_str()
      ->check(examples::positive());
  app.add_option("--limit", f.limit, "use only the first N training images; 0: all")->check(at_least(0));
  app.add_option("--seed", f.seed, "seed")->capture_default_str()->check(at_least(0));
  return examples::run_reporting_errors(app, argc, argv, [&] {
    examples::require_writable({{"--out", f.out}});
    return train_classifier(f);
  });
}
