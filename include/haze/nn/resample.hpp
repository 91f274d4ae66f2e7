#pragma once
// The U-Net's change of resolution, as diffusers' Downsample2D / Upsample2D
// with use_conv = true (one parameter child named "conv"):
//   Downsample: 3x3 conv, stride 2, padding 1          [N, C, H, W] -> [N, C, ceil(H/2), ceil(W/2)]
//   Upsample:   nearest-neighbour 2x, then 3x3 conv    [N, C, H, W] -> [N, C, 2H, 2W]
// Upsample's backward sums each 2x2 block of the conv's input gradient.

#include "haze/nn/conv2d.hpp"
#include "haze/ops/layout.hpp"

namespace haze::nn {

template <Real T, Backend B>
class Downsample {
 public:
  using value_type = T;
  using backend_type = B;

  explicit Downsample(int64_t channels) : conv_(channels, channels, 3, 2, 1) {}

  Tensor<T, B> forward(const Tensor<T, B>& x) { return conv_.forward(x); }
  Tensor<T, B> infer(const Tensor<T, B>& x) const { return conv_.infer(x); }
  Tensor<T, B> backward(const Tensor<T, B>& dy) { return conv_.backward(dy); }
  void parameters(Parameters<T, B>& out, std::string_view prefix) { conv_.parameters(out, join_name(prefix, "conv")); }

 private:
  Conv2d<T, B> conv_;
};

template <Real T, Backend B>
class Upsample {
 public:
  using value_type = T;
  using backend_type = B;

  explicit Upsample(int64_t channels) : conv_(channels, channels, 3, 1, 1) {}

  Tensor<T, B> forward(const Tensor<T, B>& x) { return conv_.forward(enlarge(x)); }
  Tensor<T, B> infer(const Tensor<T, B>& x) const { return conv_.infer(enlarge(x)); }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    const Tensor<T, B> d_enlarged = conv_.backward(dy);
    Tensor<T, B> dx({d_enlarged.dim(0), d_enlarged.dim(1), d_enlarged.dim(2) / 2, d_enlarged.dim(3) / 2});
    ops::upsample_nearest2x_backward(d_enlarged, dx);
    return dx;
  }

  void parameters(Parameters<T, B>& out, std::string_view prefix) { conv_.parameters(out, join_name(prefix, "conv")); }

 private:
  static Tensor<T, B> enlarge(const Tensor<T, B>& x) {
    x.require_nonempty("Upsample::forward");
    HAZE_REQUIRE(x.rank() == 4, "Upsample: expects an NCHW input, got ", x.shape());
    Tensor<T, B> y({x.dim(0), x.dim(1), 2 * x.dim(2), 2 * x.dim(3)});
    ops::upsample_nearest2x(x, y);
    return y;
  }

  Conv2d<T, B> conv_;  // caches its input: the enlarged map
};

}  // namespace haze::nn
