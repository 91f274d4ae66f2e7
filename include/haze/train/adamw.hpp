#pragma once
// AdamW (Loshchilov & Hutter 2019): Adam with the weight decay decoupled
// from the gradient, as torch.optim.AdamW computes it. At step s (1-based):
//   p <- p (1 - lr wd)                                   (decay, weights only by default)
//   m <- b1 m + (1 - b1) g         v <- b2 v + (1 - b2) g^2
//   p <- p - (lr / (1 - b1^s)) m / (sqrt(v) / sqrt(1 - b2^s) + eps)
// AdamW packs the parameters into one arena (nn/parameter_arena.hpp) and
// keeps its moments in two more of the same layout, so a step is three
// launches whatever the model: one pass that flags any value the update
// would make NaN or infinite, their count, and the update itself over
// (p, g, m, v), which writes only when the count is zero (and can fold in
// the EMA, Ema::update's average, in the same pass).

#include <cmath>
#include <string>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/core/macros.hpp"
#include "haze/core/tensor.hpp"
#include "haze/nn/module.hpp"
#include "haze/nn/parameter_arena.hpp"
#include "haze/ops/reduce.hpp"
#include "haze/train/ema.hpp"

namespace haze::train {

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decay_all = false;  // false: decay only ParamKind::Weight (not biases, norms, embeddings)

  void validate() const {
    HAZE_REQUIRE(beta1 >= 0 && beta1 < 1, "AdamW: beta1 must be in [0, 1), got ", beta1);
    HAZE_REQUIRE(beta2 >= 0 && beta2 < 1, "AdamW: beta2 must be in [0, 1), got ", beta2);
    HAZE_REQUIRE(eps > 0, "AdamW: eps must be > 0, got ", eps);
    HAZE_REQUIRE(weight_decay >= 0, "AdamW: weight_decay must be >= 0, got ", weight_decay);
  }
};

namespace detail {
template <class T>
struct AdamWKernel {
  T* p;
  const T* g;
  T* m;
  T* v;
  int64_t decayed_end;  // elements [0, decayed_end) decay (the arena's weights)
  T decay, beta1, beta2, step_size, inv_sqrt_bias2, eps;
  const double* grad_scale;  // null: 1

  struct Update {
    T p, m, v;
  };
  // What the step writes at element i.
  HAZE_HD Update at(int64_t i) const {
    const T grad = grad_scale ? g[i] * T(*grad_scale) : g[i];
    const T m_new = beta1 * m[i] + (T(1) - beta1) * grad;
    const T v_new = beta2 * v[i] + (T(1) - beta2) * grad * grad;
    const T keep = i < decayed_end ? decay : T(1);
    return {p[i] * keep - step_size * m_new / (std::sqrt(v_new) * inv_sqrt_bias2 + eps), m_new, v_new};
  }
};

// flags[i] = 1 where the step would write a NaN or an infinity, else 0
// (x - x is 0 exactly when x is finite).
template <class T>
struct AdamWNonFinite {
  AdamWKernel<T> step;
  T* flags;
  HAZE_HD void operator()(int64_t i) const {
    const auto u = step.at(i);
    const T zero = (u.p - u.p) + (u.m - u.m) + (u.v - u.v);
    flags[i] = zero == zero ? T(0) : T(1);
  }
};

// The update, written only when no value would be non-finite and nothing
// upstream blocked the step; then the average, if any, in the same pass
// (shadow <- a shadow + b p, Ema::update's expression).
template <class T>
struct AdamWApply {
  AdamWKernel<T> step;
  const double* nonfinite;
  const double* blocked;  // null: never
  T* shadow;              // null: no average
  T a, b;
  HAZE_HD void operator()(int64_t i) const {
    if (*nonfinite != 0 || (blocked && *blocked != 0)) return;
    const auto u = step.at(i);
    step.p[i] = u.p;
    step.m[i] = u.m;
    step.v[i] = u.v;
    if (shadow) shadow[i] = a * shadow[i] + b * u.p;
  }
};
}  // namespace detail

// What a step may take from the device without the host reading it first,
// so that a training step waits on nothing until its end (the Trainer's
// clipping and checks), and where it leaves its verdict.
template <Real T, Backend B>
struct StepControls {
  double* nonfinite = nullptr;         // receives how many values the step would make non-finite (required)
  const double* grad_scale = nullptr;  // every gradient times *grad_scale (null: 1)
  const double* blocked = nullptr;     // *blocked != 0: the step writes nothing (null: never)
  Ema<T, B>* average = nullptr;        // folds the new values into this EMA in the same pass
  int64_t average_step = 0;            // ... as Ema::update(params, average_step) would
};

template <Real T, Backend B>
class AdamW {
 public:
  AdamW(nn::Parameters<T, B> params, AdamWOptions options = {})
      : arena_(std::move(params)), options_((options.validate(), options)) {
    const int64_t size = arena_.size();
    if (size == 0) return;
    m_ = Tensor<T, B>::zeros({size});
    v_ = Tensor<T, B>::zeros({size});
    flags_ = Tensor<T, B>({size});
    nonfinite_ = Tensor<double, B>({1});
    for (size_t i = 0; i < arena_.parameters().size(); ++i) {
      const Shape shape = arena_.parameters()[i].value->shape();
      m_views_.push_back(m_.slice(arena_.offset(i), shape));
      v_views_.push_back(v_.slice(arena_.offset(i), shape));
    }
  }

  const AdamWOptions& options() const { return options_; }
  int64_t steps_taken() const { return step_; }
  const nn::Parameters<T, B>& parameters() const { return arena_.parameters(); }
  const nn::ParameterArena<T, B>& arena() const { return arena_; }
  // First and second moments of parameter i (checkpoints save and restore them).
  Tensor<T, B>& first_moment(size_t i) { return m_views_.at(i); }
  Tensor<T, B>& second_moment(size_t i) { return v_views_.at(i); }
  // Both moments whole, in the arena's layout (empty for no parameters).
  Tensor<T, B>& first_moments() { return m_; }
  Tensor<T, B>& second_moments() { return v_; }
  void set_steps_taken(int64_t s) {
    HAZE_REQUIRE(s >= 0, "AdamW: step count must be >= 0, got ", s);
    step_ = s;
  }

  // One update with learning rate lr from the gradients in the parameters.
  // All or nothing: if the update would make any value NaN or infinite (a
  // learning rate that overflows, say), it throws haze::Error naming the
  // parameter, and nothing was written.
  void step(double lr) {
    enqueue_step(lr, {.nonfinite = nonfinite_.data()});
    finish_step(lr, arena_.trained_end() == 0 ? 0.0 : nonfinite_.to_host()[0]);
  }

  // The same step queued on the backend, reading nothing back: it writes
  // only if *controls.nonfinite comes to 0 and *controls.blocked is not set.
  // The caller reads *controls.nonfinite later and calls finish_step.
  void enqueue_step(double lr, const StepControls<T, B>& controls) {
    HAZE_REQUIRE(lr >= 0 && std::isfinite(lr), "AdamW::step: learning rate must be finite and >= 0, got ", lr);
    HAZE_REQUIRE(controls.nonfinite, "AdamW::enqueue_step: controls.nonfinite must point at a device double");
    const int64_t size = arena_.trained_end();  // frozen parameters stay as they are
    if (size == 0) return;
    const detail::AdamWKernel<T> kernel = kernel_for(lr, step_ + 1, controls.grad_scale);
    B::for_each_index(size, detail::AdamWNonFinite<T>{kernel, flags_.data()});
    B::sum_axes(flags_.data(), 1, 1, size, ops::Identity{}, 0.0, controls.nonfinite);
    detail::AdamWApply<T> apply{kernel, controls.nonfinite, controls.blocked, nullptr, T(0), T(0)};
    if (controls.average) {
      const double d = controls.average->decay_at(controls.average_step);
      apply.shadow = controls.average->shadow_buffer(arena_);
      apply.a = T(d);
      apply.b = T(1 - d);
    }
    B::for_each_index(size, apply);
  }

  // Completes an enqueued step given what its count came to: counts the
  // step, or throws naming the first parameter that would go non-finite.
  void finish_step(double lr, double nonfinite) {
    if (nonfinite != 0) [[unlikely]]
      fail_nonfinite(lr, step_ + 1);
    ++step_;
  }

 private:
  detail::AdamWKernel<T> kernel_for(double lr, int64_t step, const double* grad_scale) {
    const double bias1 = 1 - std::pow(options_.beta1, double(step));
    const double bias2 = 1 - std::pow(options_.beta2, double(step));
    const double decay = 1 - lr * options_.weight_decay;
    const char* op = "AdamW::step";
    return {arena_.values(op),
            arena_.grads(op),
            m_.data(),
            v_.data(),
            options_.decay_all ? arena_.trained_end() : arena_.decayed_end(),
            T(decay),
            T(options_.beta1),
            T(options_.beta2),
            T(lr / bias1),
            T(1 / std::sqrt(bias2)),
            T(options_.eps),
            grad_scale};
  }

  // Names the first parameter whose update is not finite (the rare path:
  // reads the flags back).
  [[noreturn]] void fail_nonfinite(double lr, int64_t step) const {
    const std::vector<T> flags = flags_.to_host();
    for (size_t i = 0; i < arena_.parameters().size(); ++i) {
      const auto& p = arena_.parameters()[i];
      if (p.kind == nn::ParamKind::Frozen) continue;  // not updated: no flags
      const int64_t n = p.value->numel(), offset = arena_.offset(i);
      int64_t bad = 0;
      for (int64_t j = offset; j < offset + n; ++j) bad += flags[size_t(j)] != T(0);
      if (bad > 0)
        HAZE_FAIL("AdamW::step: step ", step, " at learning rate ", lr, " would make ", bad, " of the ", n,
                  " values of '", p.name, "' (or its moments) NaN or infinite; no parameter was changed");
    }
    HAZE_FAIL("AdamW::step: step ", step, " would make a parameter non-finite; no parameter was changed");
  }

  nn::ParameterArena<T, B> arena_;
  AdamWOptions options_;
  Tensor<T, B> m_, v_;                           // in the arena's layout
  std::vector<Tensor<T, B>> m_views_, v_views_;  // parameter i's slices of them
  Tensor<T, B> flags_;                           // one per arena element, for the check
  Tensor<double, B> nonfinite_;                  // step()'s count
  int64_t step_ = 0;
};

}  // namespace haze::train
