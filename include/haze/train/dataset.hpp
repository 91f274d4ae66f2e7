#pragma once
// Dataset: training items held on the host (float values, one shape per
// item, optional integer labels), and BatchOrder: which items make each
// batch. Every epoch visits all items once in a fresh random order; the
// order of epoch e is a function of (seed, e) alone, so (epoch, position)
// is the whole state a checkpoint needs to resume mid-epoch.

#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/core/generator.hpp"
#include "haze/core/tensor.hpp"

namespace haze::train {

struct Dataset {
  std::vector<int64_t> item_shape;  // e.g. {1, 32, 32} for images, {2} for 2-D points
  std::vector<float> values;        // count x item_numel, item after item
  std::vector<int64_t> labels;      // one per item, or empty when unlabelled

  int64_t item_numel() const {
    return std::accumulate(item_shape.begin(), item_shape.end(), int64_t(1), std::multiplies<>());
  }
  int64_t count() const { return item_numel() > 0 ? static_cast<int64_t>(values.size()) / item_numel() : 0; }

  void validate() const {
    HAZE_REQUIRE(!item_shape.empty() && item_shape.size() <= 3, "Dataset: item shape must have 1 to 3 dimensions");
    HAZE_REQUIRE(item_numel() > 0, "Dataset: item shape has a zero dimension");
    HAZE_REQUIRE(!values.empty() && static_cast<int64_t>(values.size()) % item_numel() == 0, "Dataset: ",
                 values.size(), " values do not make whole items of ", item_numel());
    HAZE_REQUIRE(labels.empty() || static_cast<int64_t>(labels.size()) == count(), "Dataset: ", labels.size(),
                 " labels for ", count(), " items");
  }

  // The batch's shape: [n, item_shape...].
  Shape batch_shape(int64_t n) const {
    std::vector<int64_t> dims{n};
    dims.insert(dims.end(), item_shape.begin(), item_shape.end());
    return Shape(dims);
  }

  // Copies items `indices` into x (shape batch_shape) and their labels into `labels_out`.
  template <Real T, Backend B>
  void gather(std::span<const int64_t> indices, Tensor<T, B>& x, std::vector<int64_t>& labels_out) const {
    const int64_t per = item_numel();
    std::vector<T> host(indices.size() * static_cast<size_t>(per));
    labels_out.clear();
    for (size_t n = 0; n < indices.size(); ++n) {
      const int64_t i = indices[n];
      HAZE_REQUIRE(i >= 0 && i < count(), "Dataset::gather: index ", i, " outside [0, ", count(), ")");
      std::copy_n(values.begin() + i * per, per, host.begin() + static_cast<int64_t>(n) * per);
      if (!labels.empty()) labels_out.push_back(labels[static_cast<size_t>(i)]);
    }
    x.assign_from_host(host);
  }
};

class BatchOrder {
 public:
  BatchOrder(int64_t count, uint64_t seed) : count_(count), seed_(seed) {
    HAZE_REQUIRE(count > 0, "BatchOrder: the dataset is empty");
    shuffle();
  }

  int64_t count() const { return count_; }
  int64_t epoch() const { return epoch_; }
  int64_t position() const { return position_; }
  uint64_t seed() const { return seed_; }

  // Jumps to `position` within epoch `epoch` (resuming from a checkpoint).
  void seek(int64_t epoch, int64_t position) {
    HAZE_REQUIRE(epoch >= 0 && position >= 0 && position <= count_, "BatchOrder::seek: epoch ", epoch,
                 ", position ", position, " outside a dataset of ", count_);
    epoch_ = epoch;
    position_ = position;
    shuffle();
  }

  // The next n item indices; crosses into the next epoch when this one runs out.
  std::vector<int64_t> next(int64_t n) {
    std::vector<int64_t> out;
    out.reserve(static_cast<size_t>(n));
    while (static_cast<int64_t>(out.size()) < n) {
      if (position_ == count_) {
        ++epoch_;
        position_ = 0;
        shuffle();
      }
      out.push_back(order_[static_cast<size_t>(position_++)]);
    }
    return out;
  }

 private:
  // Fisher-Yates with draws from the stream of (seed, epoch): epoch e owns
  // the blocks from e * 2^40 on.
  void shuffle() {
    order_.resize(static_cast<size_t>(count_));
    std::iota(order_.begin(), order_.end(), int64_t(0));
    Generator gen{seed_, static_cast<uint64_t>(epoch_) << 40};
    for (int64_t i = count_ - 1; i > 0; --i) std::swap(order_[static_cast<size_t>(i)], order_[static_cast<size_t>(next_below(gen, i + 1))]);
  }

  int64_t count_;
  uint64_t seed_;
  int64_t epoch_ = 0;
  int64_t position_ = 0;
  std::vector<int64_t> order_;
};

}  // namespace haze::train
