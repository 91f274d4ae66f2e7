#pragma once
// GlobalAvgPool: x [N, C, H, W] -> y [N, C], the mean of each (n, c) plane:
//   y[n, c] = (1 / HW) sum_{h, w} x[n, c, h, w]
//   backward: dx[n, c, h, w] = dy[n, c] / HW
// No parameters. backward needs only the input's shape, so the cache is that
// shape (no handle on x).

#include <optional>

#include "haze/core/macros.hpp"
#include "haze/nn/module.hpp"
#include "haze/ops/reduce.hpp"

namespace haze::nn {

namespace detail {

template <class T>
struct SpreadOverPlane {  // dx[i] = dy[i / plane] * inv_plane
  const T* dy;
  int64_t plane;
  T inv_plane;
  HAZE_HD T operator()(int64_t i) const { return dy[i / plane] * inv_plane; }
};

}  // namespace detail

template <Real T, Backend B>
class GlobalAvgPool {
 public:
  using value_type = T;
  using backend_type = B;

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    Tensor<T, B> y = infer(x);
    input_shape_ = x.shape();
    return y;
  }

  Tensor<T, B> infer(const Tensor<T, B>& x) const {
    x.require_nonempty("GlobalAvgPool::forward");
    HAZE_REQUIRE(x.rank() == 4, "GlobalAvgPool: expects input [N, C, H, W], got ", x.shape());
    const int64_t n = x.dim(0), c = x.dim(1), plane = x.dim(2) * x.dim(3);
    Tensor<T, B> y({n, c});  // (N, C)
    ops::sum_axes(x, 1, n * c, plane, y);
    ops::scale(y, static_cast<T>(1.0 / double(plane)));
    return y;
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    HAZE_REQUIRE(input_shape_.has_value(), "GlobalAvgPool::backward called without a matching forward");
    const Shape s = *input_shape_;
    dy.require_nonempty("GlobalAvgPool::backward");
    HAZE_REQUIRE(dy.shape() == (Shape{s[0], s[1]}), "GlobalAvgPool::backward: dy ", dy.shape(), " should be [",
                 s[0], ", ", s[1], "] for input ", s);
    const int64_t plane = s[2] * s[3];
    Tensor<T, B> dx(s);  // (N, C, H, W)
    ops::map_index(dx, detail::SpreadOverPlane<T>{dy.data(), plane, static_cast<T>(1.0 / double(plane))});
    input_shape_.reset();
    return dx;
  }

  void parameters(Parameters<T, B>&, std::string_view) {}
  void zero_grad() {}

 private:
  std::optional<Shape> input_shape_;  // forward input's shape [N, C, H, W]
};

}  // namespace haze::nn
