#pragma once
// Conv2d: x [N, Cin, H, W], W [Cout, Cin, kh, kw], b [Cout], y [N, Cout, Ho, Wo].
// The products themselves live in ops/conv.hpp (im2col + GEMM, or the
// backend's own: on the Cpu, backend/cpu/convolution.hpp). The cache is a
// handle on x: backward rebuilds the im2col columns rather than keeping
// them (they are kh kw times the size of x).

#include "haze/nn/module.hpp"
#include "haze/ops/conv.hpp"
#include "haze/ops/reduce.hpp"

namespace haze::nn {

template <Real T, Backend B>
class Conv2d {
 public:
  using value_type = T;
  using backend_type = B;

  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride = 1, int64_t padding = 0)
      : in_(in_channels), out_(out_channels), kernel_(kernel), stride_(stride), padding_(padding),
        weight_(Shape{out_channels, in_channels, kernel, kernel}), bias_(Shape{out_channels}) {
    HAZE_REQUIRE(in_channels > 0 && out_channels > 0 && kernel > 0 && stride > 0 && padding >= 0,
                 "Conv2d: bad configuration in ", in_channels, ", out ", out_channels, ", kernel ", kernel,
                 ", stride ", stride, ", padding ", padding);
  }

  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    Tensor<T, B> y = infer(x);
    x_ = keep(x);
    return y;
  }

  Tensor<T, B> infer(const Tensor<T, B>& x) const {
    const ops::ConvGeometry g = geometry(x, "Conv2d::forward");
    Tensor<T, B> y({x.dim(0), out_, g.out_height(), g.out_width()});
    ops::conv2d_forward(x, weight_matrix(), bias_.value, g, y);
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require_cached(x_, "Conv2d");
    const ops::ConvGeometry g = geometry(x_, "Conv2d::backward");
    HAZE_REQUIRE(dy.shape() == (Shape{x_.dim(0), out_, g.out_height(), g.out_width()}), "Conv2d::backward: dy ",
                 dy.shape(), " does not match the forward output");
    ops::sum_per_channel(dy, bias_.grad, ops::Identity{}, T(1));
    Tensor<T, B> dx(x_.shape());
    Tensor<T, B> dw = weight_.grad.reshape({out_, g.patch()});
    ops::conv2d_backward(x_, weight_matrix(), dy, g, dw, dx);
    x_ = Tensor<T, B>();
    return dx;
  }

  void parameters(Parameters<T, B>& out, std::string_view prefix) {
    add_parameter(out, prefix, "weight", weight_, ParamKind::Weight);
    add_parameter(out, prefix, "bias", bias_, ParamKind::Bias);
  }

 private:
  ops::ConvGeometry geometry(const Tensor<T, B>& x, const char* op) const {
    x.require_nonempty(op);
    HAZE_REQUIRE(x.rank() == 4 && x.dim(1) == in_, op, ": expects input [N, ", in_, ", H, W], got ", x.shape());
    const ops::ConvGeometry g{in_, x.dim(2), x.dim(3), kernel_, kernel_, stride_, padding_};
    HAZE_REQUIRE(g.out_height() >= 1 && g.out_width() >= 1, op, ": input ", x.shape(), " is smaller than the ",
                 kernel_, "x", kernel_, " kernel with padding ", padding_);
    return g;
  }

  Tensor<T, B> weight_matrix() const { return weight_.value.reshape({out_, in_ * kernel_ * kernel_}); }

  int64_t in_, out_, kernel_, stride_, padding_;
  Param<T, B> weight_, bias_;
  Tensor<T, B> x_;  // forward input [N, Cin, H, W]
};

}  // namespace haze::nn
