#pragma once
// Ema: an exponential moving average of a model's parameters, the weights
// sampling uses by default. After optimizer step s (1-based):
//   shadow <- d shadow + (1 - d) param,   d = min(max_decay, (1 + s) / (10 + s))
// The warm-up term keeps the first steps from averaging in the random
// initialisation for thousands of steps (the schedule diffusers' EMAModel
// and the DDPM code use).
//
// The average is held in the layout of the parameters' arena
// (nn/parameter_arena.hpp; the Ema packs them if nothing has yet), so an
// update is one pass over every parameter; AdamW can fold it into its own
// update pass (StepControls::average).

#include <algorithm>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/nn/module.hpp"
#include "haze/nn/parameter_arena.hpp"
#include "haze/ops/combine.hpp"
#include "haze/ops/elementwise.hpp"

namespace haze::train {

namespace detail {
// shadow <- a shadow + b value (ops::lincomb's expression).
template <class T>
struct EmaUpdate {
  T* shadow;
  const T* value;
  T a, b;
  HAZE_HD void operator()(int64_t i) const { shadow[i] = a * shadow[i] + b * value[i]; }
};
}  // namespace detail

template <Real T, Backend B>
class Ema {
 public:
  Ema(const nn::Parameters<T, B>& params, double max_decay = 0.9999)
      : max_decay_(max_decay), arena_((check_decay(max_decay), params)) {
    if (arena_.size() == 0) return;
    flat_ = Tensor<T, B>({arena_.size()});
    B::copy(flat_.data(), arena_.values("Ema"), arena_.size());  // gaps included: zero
    for (size_t i = 0; i < params.size(); ++i)
      shadow_.push_back(flat_.slice(arena_.offset(i), params[i].value->shape()));
  }

  double max_decay() const { return max_decay_; }
  double decay_at(int64_t step) const { return std::min(max_decay_, (1.0 + double(step)) / (10.0 + double(step))); }
  size_t size() const { return shadow_.size(); }
  Tensor<T, B>& shadow(size_t i) { return shadow_.at(i); }
  const Tensor<T, B>& shadow(size_t i) const { return shadow_.at(i); }
  // The whole average, in the parameters' arena layout (empty for none).
  Tensor<T, B>& shadows() { return flat_; }

  // Folds in the parameters after optimizer step `step`.
  void update(const nn::Parameters<T, B>& params, int64_t step) {
    require_matches(params, "Ema::update");
    if (arena_.size() == 0) return;
    const double d = decay_at(step);
    B::for_each_index(arena_.trained_end(),  // a frozen parameter's average is its value
                      detail::EmaUpdate<T>{flat_.data(), arena_.values("Ema::update"), T(d), T(1 - d)});
  }

  // Writes the averaged weights into params (e.g. a model built for sampling).
  void copy_to(const nn::Parameters<T, B>& params) const {
    require_matches(params, "Ema::copy_to", /*same_arena=*/false);
    for (size_t i = 0; i < shadow_.size(); ++i) ops::copy(shadow_[i], *params[i].value);
  }

  // The whole average, for an optimizer that folds the update into its own
  // pass over `arena` (which must be laid out as this one's).
  T* shadow_buffer(const nn::ParameterArena<T, B>& arena) {
    HAZE_REQUIRE(arena.size() == arena_.size() && arena.values("Ema") == arena_.values("Ema"),
                 "Ema: the optimizer's parameters are not the ones this average was made for");
    return flat_.data();
  }

 private:
  static void check_decay(double max_decay) {
    HAZE_REQUIRE(max_decay >= 0 && max_decay < 1, "Ema: max_decay must be in [0, 1), got ", max_decay);
  }

  // params must match the average one for one in shape; for update, they
  // must also be the parameters it was made from (its arena's).
  void require_matches(const nn::Parameters<T, B>& params, const char* op, bool same_arena = true) const {
    HAZE_REQUIRE(params.size() == shadow_.size(), op, ": ", params.size(), " parameters but the average holds ",
                 shadow_.size());
    for (size_t i = 0; i < params.size(); ++i) {
      HAZE_REQUIRE(params[i].value->shape() == shadow_[i].shape(), op, ": parameter '", params[i].name, "' is ",
                   params[i].value->shape(), " but its average is ", shadow_[i].shape());
      HAZE_REQUIRE(!same_arena || params[i].value->data() == arena_.parameters()[i].value->data(), op,
                   ": parameter '", params[i].name, "' is not the one this average was made from");
    }
  }

  double max_decay_;
  nn::ParameterArena<T, B> arena_;
  Tensor<T, B> flat_;                // the average, in the arena's layout
  std::vector<Tensor<T, B>> shadow_;  // parameter i's slice of it
};

}  // namespace haze::train
