#pragma once
// Ema: an exponential moving average of a model's parameters, the weights
// sampling uses by default. After optimizer step s (1-based):
//   shadow <- d shadow + (1 - d) param,   d = min(max_decay, (1 + s) / (10 + s))
// The warm-up term keeps the first steps from averaging in the random
// initialisation for thousands of steps (the schedule diffusers' EMAModel
// and the DDPM code use).

#include <algorithm>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/nn/module.hpp"
#include "haze/ops/combine.hpp"
#include "haze/ops/elementwise.hpp"

namespace haze::train {

template <Real T, Backend B>
class Ema {
 public:
  Ema(const nn::Parameters<T, B>& params, double max_decay = 0.9999) : max_decay_(max_decay) {
    HAZE_REQUIRE(max_decay >= 0 && max_decay < 1, "Ema: max_decay must be in [0, 1), got ", max_decay);
    for (const auto& p : params) shadow_.push_back(p.value->clone());
  }

  double max_decay() const { return max_decay_; }
  double decay_at(int64_t step) const { return std::min(max_decay_, (1.0 + double(step)) / (10.0 + double(step))); }
  size_t size() const { return shadow_.size(); }
  Tensor<T, B>& shadow(size_t i) { return shadow_.at(i); }
  const Tensor<T, B>& shadow(size_t i) const { return shadow_.at(i); }

  // Folds in the parameters after optimizer step `step`.
  void update(const nn::Parameters<T, B>& params, int64_t step) {
    require_matches(params, "Ema::update");
    const double d = decay_at(step);
    for (size_t i = 0; i < shadow_.size(); ++i) ops::lincomb(shadow_[i], d, shadow_[i], 1 - d, *params[i].value);
  }

  // Writes the averaged weights into params (e.g. a model built for sampling).
  void copy_to(const nn::Parameters<T, B>& params) const {
    require_matches(params, "Ema::copy_to");
    for (size_t i = 0; i < shadow_.size(); ++i) ops::copy(shadow_[i], *params[i].value);
  }

 private:
  void require_matches(const nn::Parameters<T, B>& params, const char* op) const {
    HAZE_REQUIRE(params.size() == shadow_.size(), op, ": ", params.size(), " parameters but the average holds ",
                 shadow_.size());
    for (size_t i = 0; i < params.size(); ++i)
      HAZE_REQUIRE(params[i].value->shape() == shadow_[i].shape(), op, ": parameter '", params[i].name, "' is ",
                   params[i].value->shape(), " but its average is ", shadow_[i].shape());
  }

  double max_decay_;
  std::vector<Tensor<T, B>> shadow_;
};

}  // namespace haze::train
