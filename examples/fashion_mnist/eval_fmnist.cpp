// haze-eval: scores generated Fashion-MNIST samples with the classifier
// from haze-train-classifier.
//
//   haze-eval --samples out/eval_samples.safetensors --classifier out/classifier.safetensors
//
// Prints (and writes to --out as JSON) the fraction of samples classified as
// the class they were conditioned on, and the Frechet distance between the
// classifier features of the samples and of the test set, beside the floor:
// the same distance for as many real training images as there are samples.
#include <haze/haze.hpp>
#include <haze/io/atomic_file.hpp>
#include <haze/io/safetensors.hpp>
#include <haze/metrics/frechet.hpp>

#include <nlohmann/json.hpp>

#include "../common/cli.hpp"
#include "classifier.hpp"
#include "classifier_io.hpp"
#include "data.hpp"

namespace {

using namespace haze;

struct Flags {
  std::string samples = "out/eval_samples.safetensors", classifier = "out/classifier.safetensors";
  std::string data = fashion_mnist::default_data_dir, out = "out/scores.json";
};

// The samples file as a dataset, validated.
train::Dataset read_samples(const std::string& path) {
  const io::Safetensors file = io::load_safetensors(path);
  const io::TensorRecord& samples = file.at("samples");
  const io::TensorRecord& labels = file.at("labels");
  const std::vector<int64_t> want = {samples.shape.empty() ? 0 : samples.shape[0], 1, fashion_mnist::image_size,
                                     fashion_mnist::image_size};
  HAZE_REQUIRE(samples.shape == want && want[0] >= 2, path, ": 'samples' must be float32 [N >= 2, 1, 32, 32], got ",
               io::detail::shape_text(samples.shape));
  HAZE_REQUIRE(labels.shape == std::vector<int64_t>{want[0]}, path, ": 'labels' must be int64 [", want[0], "], got ",
               io::detail::shape_text(labels.shape));
  train::Dataset data;
  data.item_shape = {1, fashion_mnist::image_size, fashion_mnist::image_size};
  data.values = samples.as<float>();
  data.labels = labels.as<int64_t>();
  for (size_t i = 0; i < data.labels.size(); ++i)
    HAZE_REQUIRE(data.labels[i] >= 0 && data.labels[i] < fashion_mnist::classes, path, ": label ", data.labels[i],
                 " of sample ", i, " is not a Fashion-MNIST class");
  return data;
}

int evaluate(const Flags& f) {
  const train::Dataset samples = read_samples(f.samples);
  fashion_mnist::Classifier<float, backend::Cpu> model;
  fashion_mnist::load_classifier(f.classifier, model);
  const train::Dataset test = fashion_mnist::load(f.data, "t10k");
  const train::Dataset real = fashion_mnist::load(f.data, "train", samples.count());

  const auto stats = [&](const train::Dataset& d) {
    return metrics::feature_stats(fashion_mnist::features(model, d), d.count(), model.feature_dim());
  };
  const metrics::FeatureStats test_stats = stats(test);
  const double class_accuracy = fashion_mnist::accuracy(model, samples);
  const double fd = metrics::frechet_distance(stats(samples), test_stats);
  const double floor = metrics::frechet_distance(stats(real), test_stats);
  std::printf("samples classified as their class: %.1f%% (%lld samples)\n", 100 * class_accuracy,
              (long long)samples.count());
  std::printf("Frechet distance to the test set (classifier features): %.3f; real-vs-real floor (%lld train "
              "images): %.3f; ratio %.2f\n", fd, (long long)samples.count(), floor, fd / floor);
  const nlohmann::ordered_json scores = {{"samples", f.samples},
                                         {"count", samples.count()},
                                         {"class_accuracy", class_accuracy},
                                         {"frechet_distance", fd},
                                         {"frechet_floor", floor},
                                         {"frechet_ratio", fd / floor}};
  const std::string text = scores.dump(2) + "\n";
  io::write_file_atomically(f.out, std::as_bytes(std::span(text)));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app{"Score Fashion-MNIST samples: class accuracy and Frechet distance (haze)", "haze-eval"};
  app.add_option("--samples", f.samples, "samples file from haze-sample --samples")->capture_default_str();
  app.add_option("--classifier", f.classifier, "classifier from haze-train-classifier")->capture_default_str();
  app.add_option("--data", f.data, "folder with the Fashion-MNIST IDX files")->capture_default_str();
  app.add_option("--out", f.out, "scores as JSON")->capture_default_str();
  return examples::run_reporting_errors(app, argc, argv, [&] {
    examples::require_writable({{"--out", f.out}});
    return evaluate(f);
  });
}
