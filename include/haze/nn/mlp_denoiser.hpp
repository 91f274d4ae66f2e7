#pragma once
// MlpDenoiser: a small residual MLP for low-dimensional data (the toy 2-D
// examples), with the UNet's calling convention so the Trainer and the
// samplers take either. With D data dimensions, width W, E = 2 W:
//
//   h = input(x) + time(sinusoid(t, E))                 [N, W]
//   h = h + blocks.k(SiLU(h))            k = 0 .. depth-1
//   y = output(SiLU(h))                                 [N, D]
//
// backward walks the same lines upwards; the residual adds pass dh to both
// branches.

#include <span>
#include <vector>

#include "haze/nn/activation.hpp"
#include "haze/nn/linear.hpp"
#include "haze/nn/timestep_embedding.hpp"

namespace haze::nn {

template <Real T, Backend B>
class MlpDenoiser {
 public:
  using value_type = T;
  using backend_type = B;

  MlpDenoiser(int64_t dims, int64_t width, int depth)
      : dims_((validate(dims, width, depth), dims)), width_(width), input_(dims, width), time_(2 * width, width),
        output_(width, dims) {
    for (int k = 0; k < depth; ++k) blocks_.emplace_back(width, width);
    silu_.resize(static_cast<size_t>(depth));
  }

  int64_t dims() const { return dims_; }

  Tensor<T, B> forward(const Tensor<T, B>& x, std::span<const double> timesteps, std::span<const int64_t> labels = {},
                       Generator* = nullptr) {
    check(x, timesteps, labels);
    Tensor<T, B> h = input_.forward(x);
    ops::axpy(T(1), time_.forward(sinusoidal_embedding<T, B>(timesteps, 2 * width_)), h);
    for (size_t k = 0; k < blocks_.size(); ++k) {
      const Tensor<T, B> branch = blocks_[k].forward(silu_[k].forward(h));
      Tensor<T, B> next(h.shape());  // a new tensor: silu_[k] holds on to h for backward
      ops::add(h, branch, next);
      h = std::move(next);
    }
    return output_.forward(silu_out_.forward(h));
  }

  Tensor<T, B> infer(const Tensor<T, B>& x, std::span<const double> timesteps, std::span<const int64_t> labels = {}) {
    check(x, timesteps, labels);
    Tensor<T, B> h = input_.infer(x);
    ops::axpy(T(1), time_.infer(sinusoidal_embedding<T, B>(timesteps, 2 * width_)), h);
    for (size_t k = 0; k < blocks_.size(); ++k) ops::axpy(T(1), blocks_[k].infer(silu_[k].infer(h)), h);
    return output_.infer(silu_out_.infer(h));
  }

  Tensor<T, B> backward(const Tensor<T, B>& dy) {
    Tensor<T, B> dh = silu_out_.backward(output_.backward(dy));
    for (size_t k = blocks_.size(); k-- > 0;) ops::axpy(T(1), silu_[k].backward(blocks_[k].backward(dh)), dh);
    (void)time_.backward(dh);
    return input_.backward(dh);
  }

  void parameters(Parameters<T, B>& out, std::string_view prefix) {
    input_.parameters(out, join_name(prefix, "input"));
    time_.parameters(out, join_name(prefix, "time"));
    for (size_t k = 0; k < blocks_.size(); ++k) blocks_[k].parameters(out, join_name(prefix, "blocks." + std::to_string(k)));
    output_.parameters(out, join_name(prefix, "output"));
  }

 private:
  static void validate(int64_t dims, int64_t width, int depth) {
    HAZE_REQUIRE(dims > 0 && width > 0 && depth >= 0, "MlpDenoiser: dims and width must be > 0 and depth >= 0, got ",
                 dims, ", ", width, ", ", depth);
  }

  void check(const Tensor<T, B>& x, std::span<const double> timesteps, std::span<const int64_t> labels) const {
    x.require_nonempty("MlpDenoiser::forward");
    HAZE_REQUIRE(x.rank() == 2 && x.dim(1) == dims_, "MlpDenoiser: expects input [N, ", dims_, "], got ", x.shape());
    HAZE_REQUIRE(static_cast<int64_t>(timesteps.size()) == x.dim(0), "MlpDenoiser: ", timesteps.size(),
                 " timesteps for a batch of ", x.dim(0));
    HAZE_REQUIRE(labels.empty(), "MlpDenoiser: labels given to an unconditional model");
  }

  int64_t dims_, width_;
  Linear<T, B> input_, time_;
  std::vector<Linear<T, B>> blocks_;
  std::vector<SiLU<T, B>> silu_;
  SiLU<T, B> silu_out_;
  Linear<T, B> output_;
};

}  // namespace haze::nn
