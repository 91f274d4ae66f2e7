#pragma once
// AdamW (Loshchilov & Hutter 2019): Adam with the weight decay decoupled
// from the gradient, as torch.optim.AdamW computes it. At step s (1-based):
//   p <- p (1 - lr wd)                                   (decay, weights only by default)
//   m <- b1 m + (1 - b1) g         v <- b2 v + (1 - b2) g^2
//   p <- p - (lr / (1 - b1^s)) m / (sqrt(v) / sqrt(1 - b2^s) + eps)
// The moments live on the parameters' backend, one pair per parameter, and
// the update is one fused pass over (p, g, m, v), after one pass that
// checks what it would write is finite.

#include <cmath>
#include <string>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/core/macros.hpp"
#include "haze/core/tensor.hpp"
#include "haze/nn/module.hpp"

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
  T decay, beta1, beta2, step_size, inv_sqrt_bias2, eps;

  struct Update {
    T p, m, v;
  };
  // What the step writes at element i.
  HAZE_HD Update at(int64_t i) const {
    const T grad = g[i];
    const T m_new = beta1 * m[i] + (T(1) - beta1) * grad;
    const T v_new = beta2 * v[i] + (T(1) - beta2) * grad * grad;
    return {p[i] * decay - step_size * m_new / (std::sqrt(v_new) * inv_sqrt_bias2 + eps), m_new, v_new};
  }
  HAZE_HD void operator()(int64_t i) const {
    const Update u = at(i);
    p[i] = u.p;
    m[i] = u.m;
    v[i] = u.v;
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
}  // namespace detail

template <Real T, Backend B>
class AdamW {
 public:
  AdamW(nn::Parameters<T, B> params, AdamWOptions options = {})
      : params_(std::move(params)), options_((options.validate(), options)) {
    int64_t total = 0;
    for (const auto& p : params_) {
      m_.push_back(Tensor<T, B>::zeros(p.value->shape()));
      v_.push_back(Tensor<T, B>::zeros(p.value->shape()));
      total += p.value->numel();
    }
    if (total > 0) nonfinite_ = Tensor<T, B>({total});
  }

  const AdamWOptions& options() const { return options_; }
  int64_t steps_taken() const { return step_; }
  const nn::Parameters<T, B>& parameters() const { return params_; }
  // First and second moments of parameter i (checkpoints save and restore them).
  Tensor<T, B>& first_moment(size_t i) { return m_.at(i); }
  Tensor<T, B>& second_moment(size_t i) { return v_.at(i); }
  void set_steps_taken(int64_t s) {
    HAZE_REQUIRE(s >= 0, "AdamW: step count must be >= 0, got ", s);
    step_ = s;
  }

  // One update with learning rate lr from the gradients in the parameters.
  // All or nothing: a first pass over the update finds any value it would
  // make NaN or infinite (a learning rate that overflows, say) and then
  // throws haze::Error naming the parameter, before anything is written.
  void step(double lr) {
    HAZE_REQUIRE(lr >= 0 && std::isfinite(lr), "AdamW::step: learning rate must be finite and >= 0, got ", lr);
    const int64_t next = step_ + 1;
    std::vector<detail::AdamWKernel<T>> kernels;
    for (size_t i = 0; i < params_.size(); ++i) kernels.push_back(kernel(i, lr, next));

    int64_t offset = 0;
    for (size_t i = 0; i < params_.size(); ++i) {
      const int64_t n = params_[i].value->numel();
      B::for_each_index(n, detail::AdamWNonFinite<T>{kernels[i], nonfinite_.data() + offset});
      offset += n;
    }
    if (offset > 0 && B::sum(nonfinite_.data(), offset) != 0) [[unlikely]]
      fail_nonfinite(lr, next);

    for (size_t i = 0; i < params_.size(); ++i) B::for_each_index(params_[i].value->numel(), kernels[i]);
    step_ = next;
  }

 private:
  detail::AdamWKernel<T> kernel(size_t i, double lr, int64_t step) {
    const auto& p = params_[i];
    const double bias1 = 1 - std::pow(options_.beta1, double(step));
    const double bias2 = 1 - std::pow(options_.beta2, double(step));
    const bool decays = options_.decay_all || p.kind == nn::ParamKind::Weight;
    const double decay = decays ? 1 - lr * options_.weight_decay : 1.0;
    return {p.value->data(), p.grad->data(), m_[i].data(), v_[i].data(), T(decay), T(options_.beta1),
            T(options_.beta2), T(lr / bias1), T(1 / std::sqrt(bias2)), T(options_.eps)};
  }

  // Names the first parameter whose update is not finite (the rare path:
  // reads the flags back).
  [[noreturn]] void fail_nonfinite(double lr, int64_t step) const {
    int64_t offset = 0;
    std::vector<T> flags = nonfinite_.to_host();
    for (const auto& p : params_) {
      const int64_t n = p.value->numel();
      int64_t bad = 0;
      for (int64_t j = offset; j < offset + n; ++j) bad += flags[size_t(j)] != T(0);
      if (bad > 0)
        HAZE_FAIL("AdamW::step: step ", step, " at learning rate ", lr, " would make ", bad, " of the ", n,
                  " values of '", p.name, "' (or its moments) NaN or infinite; no parameter was changed");
      offset += n;
    }
    HAZE_FAIL("AdamW::step: step ", step, " would make a parameter non-finite; no parameter was changed");
  }

  nn::Parameters<T, B> params_;
  AdamWOptions options_;
  std::vector<Tensor<T, B>> m_, v_;
  Tensor<T, B> nonfinite_;  // one flag per parameter value, for the check in step()
  int64_t step_ = 0;
};

}  // namespace haze::train
