#pragma once
// SiLU (swish): y = x sigmoid(x);  dy/dx = s (1 + x (1 - s)), s = sigmoid(x).
// The cache is a handle on x. fast_exp keeps the float loops vectorised
// (it is std::exp for double, so the gradient checks see the textbook form).

#include "haze/core/fast_exp.hpp"
#include "haze/core/macros.hpp"
#include "haze/nn/module.hpp"

namespace haze::nn {

struct SiluForward {
  template <class T>
  HAZE_HD T operator()(T x) const { return x / (T(1) + fast_exp(-x)); }
};

struct SiluBackward {
  template <class T>
  HAZE_HD T operator()(T x, T dy) const {
    const T s = T(1) / (T(1) + fast_exp(-x));
    return dy * s * (T(1) + x * (T(1) - s));
  }
};

template <Real T, Backend B>
class SiLU {
 public:
  using value_type = T;
  using backend_type = B;

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    Tensor<T, B> y = infer(x);
    x_ = keep(x);
    return y;
  }

  Tensor<T, B> infer(const Tensor<T, B>& x) const {
    x.require_nonempty("SiLU::forward");
    Tensor<T, B> y(x.shape());
    ops::map(y, SiluForward{}, x);
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require_cached(x_, "SiLU");
    ops::detail::require_same_shape("SiLU::backward", "dy", dy, "x", x_);
    Tensor<T, B> dx(x_.shape());
    ops::map(dx, SiluBackward{}, x_, dy);
    x_ = Tensor<T, B>();
    return dx;
  }

  void parameters(Parameters<T, B>&, std::string_view) {}

 private:
  Tensor<T, B> x_;  // forward input
};

}  // namespace haze::nn
