#pragma once
// ScaleModel: y = w x with one scalar parameter, a stand-in for a network in
// the Trainer tests (fast, exact gradients); it records the timesteps and
// labels of its last forward so the tests can look at what the Trainer drew.

#include <haze/core/tensor.hpp>
#include <haze/nn/module.hpp>
#include <haze/ops/elementwise.hpp>
#include <haze/ops/reduce.hpp>

#include <span>
#include <vector>

namespace haze::test {

template <Real T, Backend B>
class ScaleModel {
 public:
  using value_type = T;
  using backend_type = B;

  ScaleModel() : w_(Shape{1}) { ops::fill(w_.value, T(0.5)); }

  Tensor<T, B> forward(const Tensor<T, B>& x, std::span<const double> timesteps, std::span<const int64_t> labels,
                       Generator* = nullptr) {
    last_timesteps.assign(timesteps.begin(), timesteps.end());
    last_labels.assign(labels.begin(), labels.end());
    input_ = nn::keep(x);
    Tensor<T, B> y(x.shape());
    ops::map(y, Scale{w_.value.to_host()[0]}, x);
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    nn::require_cached(input_, "ScaleModel");
    Tensor<T, B> product(dy.shape());
    ops::mul(dy, input_, product);
    const T dw = static_cast<T>(ops::sum(product));
    ops::axpy(T(1), Tensor<T, B>::from_host({1}, std::vector<T>{dw}), w_.grad);
    Tensor<T, B> dx(dy.shape());
    ops::map(dx, Scale{w_.value.to_host()[0]}, dy);
    input_ = Tensor<T, B>();
    return dx;
  }

  void parameters(nn::Parameters<T, B>& out, std::string_view prefix) {
    nn::add_parameter(out, prefix, "scale.weight", w_, nn::ParamKind::Weight);
  }

  T weight() const { return w_.value.to_host()[0]; }

  std::vector<double> last_timesteps;
  std::vector<int64_t> last_labels;

 private:
  struct Scale {
    T w;
    HAZE_HD T operator()(T v) const { return w * v; }
  };
  nn::Param<T, B> w_;
  Tensor<T, B> input_;
};

}  // namespace haze::test
