#pragma once
// The UNet as a sampler's denoiser, class-conditional with classifier-free
// guidance: out = uncond + scale (cond - uncond). Both halves go through the
// network as one batch of 2N (labels, then the null class), which is faster
// than two calls of N. scale 1 (or an unconditional model) is one plain call.

#include <haze/haze.hpp>
#include <haze/nn/unet.hpp>

#include <span>
#include <vector>

namespace fashion_mnist {

template <haze::Real T, haze::Backend B>
class GuidedDenoiser {
 public:
  GuidedDenoiser(haze::nn::UNet<T, B>& model, std::vector<int64_t> labels, double scale)
      : model_(model), labels_(std::move(labels)), scale_(scale) {
    HAZE_REQUIRE(scale >= 0, "guidance scale must be >= 0, got ", scale);
    HAZE_REQUIRE(model.config().num_classes > 0 || labels_.empty(), "labels given to an unconditional model");
  }

  haze::Tensor<T, B> operator()(const haze::Tensor<T, B>& x, double t) {
    const int64_t n = x.dim(0), numel = x.numel();
    if (labels_.empty() || scale_ == 1.0) return model_.infer(x, std::vector<double>(size_t(n), t), labels_);
    haze::Tensor<T, B> both({2 * n, x.dim(1), x.dim(2), x.dim(3)});
    B::copy(both.data(), x.data(), numel);
    B::copy(both.data() + numel, x.data(), numel);
    std::vector<int64_t> labels = labels_;
    labels.resize(size_t(2 * n), model_.config().num_classes);  // the null class
    const haze::Tensor<T, B> out = model_.infer(both, std::vector<double>(size_t(2 * n), t), labels);
    haze::Tensor<T, B> cond(x.shape()), uncond(x.shape());
    B::copy(cond.data(), out.data(), numel);
    B::copy(uncond.data(), out.data() + numel, numel);
    haze::ops::lincomb(cond, scale_, cond, 1 - scale_, uncond);
    return cond;
  }

 private:
  haze::nn::UNet<T, B>& model_;
  std::vector<int64_t> labels_;
  double scale_;
};

}  // namespace fashion_mnist
