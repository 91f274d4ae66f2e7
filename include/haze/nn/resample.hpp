#pragma once
// The U-Net's change of resolution, as diffusers' Downsample2D / Upsample2D
// with use_conv = true (one parameter child named "conv"):
//   Downsample: 3x3 conv, stride 2, padding 1          [N, C, H, W] -> [N, C, ceil(H/2), ceil(W/2)]
//               or, with padding 0 (diffusers' downsample_padding = 0, the
//               original DDPM models): one zero row and column added at the
//               bottom and right, then the conv without padding
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

  explicit Downsample(int64_t channels, int padding = 1) : padding_(padding), conv_(channels, channels, 3, 2, padding) {
    HAZE_REQUIRE(padding == 0 || padding == 1, "Downsample: padding must be 0 or 1, got ", padding);
  }

  Tensor<T, B> forward(const Tensor<T, B>& x) { return padding_ == 1 ? conv_.forward(x) : conv_.forward(padded(x)); }
  Tensor<T, B> infer(const Tensor<T, B>& x) const { return padding_ == 1 ? conv_.infer(x) : conv_.infer(padded(x)); }
  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    Tensor<T, B> dpadded = conv_.backward(dy);
    if (padding_ == 1) return dpadded;
    Tensor<T, B> dx({dpadded.dim(0), dpadded.dim(1), dpadded.dim(2) - 1, dpadded.dim(3) - 1});
    ops::pad_bottom_right_backward(dpadded, dx);
    return dx;
  }
  void parameters(Parameters<T, B>& out, std::string_view prefix) { conv_.parameters(out, join_name(prefix, "conv")); }

 private:
  static Tensor<T, B> padded(const Tensor<T, B>& x) {
    x.require_nonempty("Downsample::forward");
    HAZE_REQUIRE(x.rank() == 4, "Downsample: expects an NCHW input, got ", x.shape());
    Tensor<T, B> y({x.dim(0), x.dim(1), x.dim(2) + 1, x.dim(3) + 1});
    ops::pad_bottom_right(x, y);
    return y;
  }

  int padding_;
  Conv2d<T, B> conv_;  // with padding 0 it caches the padded input
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
