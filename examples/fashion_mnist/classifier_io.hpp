#pragma once
// The classifier's file (its parameters by name, its test accuracy in the
// metadata) and the batched passes over a dataset that haze-train-classifier
// and haze-eval share.

#include <haze/io/safetensors.hpp>
#include <haze/nn/cross_entropy.hpp>
#include <haze/train/dataset.hpp>

#include <numeric>
#include <string>

#include "classifier.hpp"

namespace fashion_mnist {

template <class Model>
void save_classifier(const std::filesystem::path& path, Model& model, double accuracy) {
  haze::io::Safetensors file;
  file.metadata = {{"haze.format", "haze-classifier-1"}, {"haze.test_accuracy", std::to_string(accuracy)}};
  for (const auto& p : haze::nn::parameters_of(model)) {
    std::vector<int64_t> dims;
    for (int i = 0; i < p.value->rank(); ++i) dims.push_back(p.value->dim(i));
    file.add(haze::io::TensorRecord::from<float>(p.name, dims, p.value->to_host()));
  }
  haze::io::save_safetensors(path, file);
}

template <class Model>
void load_classifier(const std::filesystem::path& path, Model& model) {
  const haze::io::Safetensors file = haze::io::load_safetensors(path);
  for (const auto& p : haze::nn::parameters_of(model)) {
    const haze::io::TensorRecord& r = file.at(p.name);
    HAZE_REQUIRE(r.numel() == p.value->numel(), path.string(), ": tensor '", p.name, "' has ", r.numel(),
                 " values, the classifier needs ", p.value->numel());
    p.value->assign_from_host(r.as<float>());
  }
}

// f(first, x, count) for consecutive batches of up to `batch` items of data.
template <class B, class F>
void for_batches(const haze::train::Dataset& data, int64_t batch, F&& f) {
  std::vector<int64_t> indices, labels;
  for (int64_t first = 0; first < data.count(); first += batch) {
    const int64_t count = std::min(batch, data.count() - first);
    indices.resize(size_t(count));
    std::iota(indices.begin(), indices.end(), first);
    haze::Tensor<float, B> x(data.batch_shape(count));
    data.gather(indices, x, labels);
    f(first, x, count);
  }
}

// Fraction of items whose predicted class is their label.
template <class Model>
double accuracy(const Model& model, const haze::train::Dataset& data) {
  using B = typename Model::backend_type;
  int64_t correct = 0;
  for_batches<B>(data, 500, [&](int64_t first, const haze::Tensor<float, B>& x, int64_t count) {
    const std::vector<int64_t> predicted = haze::nn::argmax_rows(model.infer(x));
    for (int64_t i = 0; i < count; ++i) correct += predicted[size_t(i)] == data.labels[size_t(first + i)];
  });
  return double(correct) / double(data.count());
}

// The penultimate features of every item, row after row.
template <class Model>
std::vector<float> features(const Model& model, const haze::train::Dataset& data) {
  using B = typename Model::backend_type;
  std::vector<float> out;
  for_batches<B>(data, 500, [&](int64_t, const haze::Tensor<float, B>& x, int64_t) {
    const std::vector<float> f = model.features(x).to_host();
    out.insert(out.end(), f.begin(), f.end());
  });
  return out;
}

}  // namespace fashion_mnist
