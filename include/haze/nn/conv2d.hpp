#pragma once
// Conv2d as im2col + GEMM. x [N, Cin, H, W], W [Cout, Cin, kh, kw], b [Cout],
// y [N, Cout, Ho, Wo]; with cols = im2col(x) [N, K = Cin kh kw, Ho Wo]:
//   forward:  y[n] = W cols[n] + b
//   backward: dW += sum_n dy[n] cols[n]^T,  db += sum over (n, h, w) of dy,
//             dx = col2im(W^T dy[n])
// The cache is a handle on x; backward rebuilds cols in a workspace kept
// between calls. A 1x1, stride-1, unpadded conv skips im2col (cols = x).

#include "haze/nn/module.hpp"
#include "haze/ops/gemm.hpp"
#include "haze/ops/im2col.hpp"
#include "haze/ops/layout.hpp"
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

  Tensor<T, B> infer(const Tensor<T, B>& x) {
    const ops::ConvGeometry g = geometry(x, "Conv2d::forward");
    const int64_t n = x.dim(0), plane = g.out_height() * g.out_width();
    Tensor<T, B> y({n, out_, g.out_height(), g.out_width()});
    Tensor<T, B> y3 = y.reshape({n, out_, plane});
    ops::matmul(weight_matrix(), columns(x, g), y3);
    ops::add_bias(y, bias_.value);
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require_cached(x_, "Conv2d");
    const ops::ConvGeometry g = geometry(x_, "Conv2d::backward");
    const int64_t n = x_.dim(0), plane = g.out_height() * g.out_width();
    HAZE_REQUIRE(dy.shape() == (Shape{n, out_, g.out_height(), g.out_width()}), "Conv2d::backward: dy ",
                 dy.shape(), " does not match the forward output");
    const Tensor<T, B> dy3 = dy.reshape({n, out_, plane});
    Tensor<T, B> dw = weight_.grad.reshape({out_, g.patch()});
    ops::matmul_sum_batches(dy3, columns(x_, g), dw, Transpose::No, Transpose::Yes, T(1), T(1));
    ops::sum_per_channel(dy, bias_.grad, ops::Identity{}, T(1));

    Tensor<T, B> dcols({n, g.patch(), plane});
    ops::matmul(weight_matrix(), dy3, dcols, Transpose::Yes, Transpose::No);
    x_ = Tensor<T, B>();
    if (pointwise()) return dcols.reshape({n, in_, g.height, g.width});
    Tensor<T, B> dx({n, in_, g.height, g.width});
    ops::col2im(dcols, g, dx);
    return dx;
  }

  void parameters(Parameters<T, B>& out, std::string_view prefix) {
    add_parameter(out, prefix, "weight", weight_, ParamKind::Weight);
    add_parameter(out, prefix, "bias", bias_, ParamKind::Bias);
  }

 private:
  bool pointwise() const { return kernel_ == 1 && stride_ == 1 && padding_ == 0; }

  ops::ConvGeometry geometry(const Tensor<T, B>& x, const char* op) const {
    x.require_nonempty(op);
    HAZE_REQUIRE(x.rank() == 4 && x.dim(1) == in_, op, ": expects input [N, ", in_, ", H, W], got ", x.shape());
    const ops::ConvGeometry g{in_, x.dim(2), x.dim(3), kernel_, kernel_, stride_, padding_};
    HAZE_REQUIRE(g.out_height() >= 1 && g.out_width() >= 1, op, ": input ", x.shape(), " is smaller than the ",
                 kernel_, "x", kernel_, " kernel with padding ", padding_);
    return g;
  }

  Tensor<T, B> weight_matrix() const { return weight_.value.reshape({out_, in_ * kernel_ * kernel_}); }

  // The im2col matrix of x, in the reused workspace (or x itself for 1x1).
  Tensor<T, B> columns(const Tensor<T, B>& x, const ops::ConvGeometry& g) {
    const Shape shape{x.dim(0), g.patch(), g.out_height() * g.out_width()};
    if (pointwise()) return x.reshape(shape);
    if (cols_.empty() || !(cols_.shape() == shape)) cols_ = Tensor<T, B>(shape);
    ops::im2col(x, g, cols_);
    return cols_.reshape(shape);
  }

  int64_t in_, out_, kernel_, stride_, padding_;
  Param<T, B> weight_, bias_;
  Tensor<T, B> x_;     // forward input [N, Cin, H, W]
  Tensor<T, B> cols_;  // im2col workspace, reused across calls
};

}  // namespace haze::nn
