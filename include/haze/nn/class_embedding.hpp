#pragma once
// A class-embedding table [classes + 1, E] (diffusers' class_embedding,
// num_class_embeds = classes + 1): row c is added to the time embedding of
// samples labelled c; the extra last row is the "null" class that
// classifier-free guidance trains with and samples from.
//   forward: y[n] = table[label[n]]
//   backward: dtable[c] += sum of dy[n] over samples with label c (a gather
//             per table row, so no two threads write one element)

#include <span>
#include <vector>

#include "haze/core/macros.hpp"
#include "haze/nn/module.hpp"

namespace haze::nn {

namespace detail {

template <class T>
struct GatherRows {
  const T* table;
  const int64_t* labels;
  int64_t width;
  HAZE_HD T operator()(int64_t i) const { return table[labels[i / width] * width + i % width]; }
};

template <class T>
struct ScatterAddRows {  // one table element per call: sums the matching rows of dy
  const T* dy;
  const int64_t* labels;
  T* grad;
  int64_t width, batch;
  HAZE_HD void operator()(int64_t i) const {
    const int64_t c = i / width, j = i % width;
    T sum = 0;
    for (int64_t n = 0; n < batch; ++n)
      if (labels[n] == c) sum += dy[n * width + j];
    grad[i] += sum;
  }
};

}  // namespace detail

template <Real T, Backend B>
class ClassEmbedding {
 public:
  using value_type = T;
  using backend_type = B;

  ClassEmbedding(int64_t classes, int64_t width) : classes_(classes), width_(width), table_(Shape{classes + 1, width}) {
    HAZE_REQUIRE(classes > 0 && width > 0, "ClassEmbedding: need classes > 0 and width > 0, got ", classes, ", ",
                 width);
  }

  int64_t classes() const { return classes_; }
  int64_t null_class() const { return classes_; }

  Tensor<T, B> forward(std::span<const int64_t> labels) {
    Tensor<T, B> y = infer(labels);
    labels_ = upload(labels);
    return y;
  }

  Tensor<T, B> infer(std::span<const int64_t> labels) const {
    const Tensor<int64_t, B> device_labels = upload(labels);
    Tensor<T, B> y({static_cast<int64_t>(labels.size()), width_});
    ops::map_index(y, detail::GatherRows<T>{table_.value.data(), device_labels.data(), width_});
    return y;
  }

  void backward(const Tensor<T, B>& dy) {
    HAZE_REQUIRE(!labels_.empty(), "ClassEmbedding::backward called without a matching forward");
    HAZE_REQUIRE(dy.shape() == (Shape{labels_.numel(), width_}), "ClassEmbedding::backward: dy ", dy.shape(),
                 " should be [", labels_.numel(), ", ", width_, "]");
    B::for_each_index(table_.grad.numel(), detail::ScatterAddRows<T>{dy.data(), labels_.data(), table_.grad.data(),
                                                                     width_, labels_.numel()});
    labels_ = Tensor<int64_t, B>();
  }

  void parameters(Parameters<T, B>& out, std::string_view prefix) {
    add_parameter(out, prefix, "weight", table_, ParamKind::Embedding);
  }

  // Throws haze::Error naming the first label outside [0, classes].
  void check(std::span<const int64_t> labels) const {
    HAZE_REQUIRE(!labels.empty(), "ClassEmbedding: no labels");
    for (size_t n = 0; n < labels.size(); ++n)
      HAZE_REQUIRE(labels[n] >= 0 && labels[n] <= classes_, "ClassEmbedding: label ", labels[n], " of sample ", n,
                   " is outside [0, ", classes_, "] (", classes_, " classes plus the null class ", classes_, ")");
  }

 private:
  Tensor<int64_t, B> upload(std::span<const int64_t> labels) const {
    check(labels);
    return Tensor<int64_t, B>::from_host({static_cast<int64_t>(labels.size())}, labels);
  }

  int64_t classes_, width_;
  Param<T, B> table_;
  Tensor<int64_t, B> labels_;  // forward labels, on the backend
};

}  // namespace haze::nn
