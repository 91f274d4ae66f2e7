#pragma once
// Linear: y = x W^T + b, x [R, in], W [out, in], b [out], y [R, out].
// backward: dW += dy^T x,  db += sum_columns dy (over the batch),  dx = dy W.

#include "haze/nn/module.hpp"
#include "haze/ops/gemm.hpp"
#include "haze/ops/layout.hpp"
#include "haze/ops/reduce.hpp"

namespace haze::nn {

template <Real T, Backend B>
class Linear {
 public:
  using value_type = T;
  using backend_type = B;

  Linear(int64_t in_features, int64_t out_features, bool bias = true)
      : in_(in_features), out_(out_features), weight_(Shape{out_features, in_features}),
        bias_(Shape{bias ? out_features : 1}), has_bias_(bias) {}

  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    Tensor<T, B> y = infer(x);
    x_ = keep(x);
    return y;
  }

  Tensor<T, B> infer(const Tensor<T, B>& x) const {
    x.require_nonempty("Linear::forward");
    HAZE_REQUIRE(x.rank() == 2 && x.dim(1) == in_, "Linear: expects input [rows, ", in_, "], got ", x.shape());
    Tensor<T, B> y({x.dim(0), out_});
    ops::matmul(x, weight_.value, y, Transpose::No, Transpose::Yes);
    if (has_bias_) ops::add_bias(y, bias_.value);
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require_cached(x_, "Linear");
    HAZE_REQUIRE(dy.shape() == (Shape{x_.dim(0), out_}), "Linear::backward: dy ", dy.shape(), " should be [",
                 x_.dim(0), ", ", out_, "]");
    ops::matmul(dy, x_, weight_.grad, Transpose::Yes, Transpose::No, T(1), T(1));
    if (has_bias_) ops::sum_columns(dy, bias_.grad, ops::Identity{}, T(1));
    Tensor<T, B> dx({x_.dim(0), in_});
    ops::matmul(dy, weight_.value, dx);
    x_ = Tensor<T, B>();
    return dx;
  }

  void parameters(Parameters<T, B>& out, std::string_view prefix) {
    add_parameter(out, prefix, "weight", weight_, ParamKind::Weight);
    if (has_bias_) add_parameter(out, prefix, "bias", bias_, ParamKind::Bias);
  }

 private:
  int64_t in_, out_;
  Param<T, B> weight_, bias_;
  bool has_bias_;
  Tensor<T, B> x_;  // forward input [R, in]
};

}  // namespace haze::nn
