#pragma once
// Conv2d as im2col + GEMM. x [N, Cin, H, W], W [Cout, Cin, kh, kw], b [Cout],
// y [N, Cout, Ho, Wo]; with cols = im2col(x) [K = Cin kh kw, N Ho Wo] the
// whole batch is one GEMM each way (Y is y with the two leading axes swapped):
//   forward:  Y [Cout, N Ho Wo] = W cols,  y = swap(Y) + b
//   backward: dY = swap(dy),  dW += dY cols^T,  db += sum over (n, h, w) of dy,
//             dx = col2im(W^T dY)
// The cache is a handle on x; backward rebuilds cols rather than keeping
// it (it is kh kw times the size of x). cols is a temporary: the backend's
// block cache hands the same memory to the next conv, so a whole U-Net
// needs one cols buffer at a time. A 1x1, stride-1, unpadded conv skips
// im2col (cols = x).

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

  Tensor<T, B> infer(const Tensor<T, B>& x) const {
    const ops::ConvGeometry g = geometry(x, "Conv2d::forward");
    const int64_t n = x.dim(0), plane = g.out_height() * g.out_width();
    Tensor<T, B> y_channel_major({out_, n * plane});
    ops::matmul(weight_matrix(), columns(x, g), y_channel_major);
    Tensor<T, B> y({n, out_, g.out_height(), g.out_width()});
    ops::swap_leading(y_channel_major, out_, n, y);
    ops::add_bias(y, bias_.value);
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    require_cached(x_, "Conv2d");
    const ops::ConvGeometry g = geometry(x_, "Conv2d::backward");
    const int64_t n = x_.dim(0), plane = g.out_height() * g.out_width();
    HAZE_REQUIRE(dy.shape() == (Shape{n, out_, g.out_height(), g.out_width()}), "Conv2d::backward: dy ",
                 dy.shape(), " does not match the forward output");
    Tensor<T, B> dy_channel_major({out_, n * plane});
    ops::swap_leading(dy, n, out_, dy_channel_major);
    Tensor<T, B> dw = weight_.grad.reshape({out_, g.patch()});
    ops::matmul(dy_channel_major, columns(x_, g), dw, Transpose::No, Transpose::Yes, T(1), T(1));
    ops::sum_per_channel(dy, bias_.grad, ops::Identity{}, T(1));

    Tensor<T, B> dcols({g.patch(), n * plane});
    ops::matmul(weight_matrix(), dy_channel_major, dcols, Transpose::Yes, Transpose::No);
    Tensor<T, B> dx({n, in_, g.height, g.width});
    if (pointwise()) ops::swap_leading(dcols, in_, n, dx);
    else ops::col2im(dcols, g, dx);
    x_ = Tensor<T, B>();
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

  // The im2col matrix of x [K, N Ho Wo]; for 1x1 just x with N and C swapped.
  Tensor<T, B> columns(const Tensor<T, B>& x, const ops::ConvGeometry& g) const {
    Tensor<T, B> cols({g.patch(), x.dim(0) * g.out_height() * g.out_width()});
    if (pointwise()) ops::swap_leading(x, x.dim(0), in_, cols);
    else ops::im2col(x, g, cols);
    return cols;
  }

  int64_t in_, out_, kernel_, stride_, padding_;
  Param<T, B> weight_, bias_;
  Tensor<T, B> x_;  // forward input [N, Cin, H, W]
};

}  // namespace haze::nn
