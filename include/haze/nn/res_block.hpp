#pragma once
// ResBlock, as diffusers' ResnetBlock2D with time_embedding_norm "default":
//   h = conv1(SiLU(norm1(x)))
//   h = h + time_emb_proj(SiLU(temb))[:, :, None, None]
//   h = conv2(dropout(SiLU(norm2(h))))
// or "scale_shift" (time_emb_proj then gives 2 C values per sample, the
// scales first):
//   h = conv2(dropout(SiLU(norm2(h) (1 + scale) + shift)))
//   y = (shortcut(x) + h) / output_scale,  shortcut = 1x1 conv_shortcut when channels change, else identity
//   (output_scale: diffusers' output_scale_factor, 1 but in a mid block)
// backward walks the same chain in reverse; dy reaches both the residual
// branch and the shortcut, and the time-embedding gradient is returned
// through backward_temb() (the U-Net sums it over all blocks).
// Dropout masks come from Philox (keep if u >= p, scale 1/(1-p)), so a
// (seed, offset) reproduces them on any backend.

#include <cmath>
#include <optional>

#include "haze/core/generator.hpp"
#include "haze/nn/activation.hpp"
#include "haze/nn/conv2d.hpp"
#include "haze/nn/group_norm.hpp"
#include "haze/nn/linear.hpp"
#include "haze/ops/layout.hpp"

namespace haze::nn {

namespace detail {

template <class T>
struct DropoutMask {  // mask[i] = (u_j >= p) / (1 - p), j = first + i, u_j from Philox block offset + j/4
  uint64_t seed, offset;
  double p;
  uint64_t first;  // the share's first element in the whole batch
  HAZE_HD T operator()(int64_t i) const {
    const uint64_t j = first + uint64_t(i);
    const philox::Block bits = philox::philox4x32_10(philox::counter_of(offset + j / 4), philox::key_of(seed));
    const double u = double(bits.v[j % 4]) * 2.3283064365386962890625e-10;
    return u >= p ? T(1 / (1 - p)) : T(0);
  }
};

}  // namespace detail

template <Real T, Backend B>
class ResBlock {
 public:
  using value_type = T;
  using backend_type = B;

  ResBlock(int64_t in_channels, int64_t out_channels, int64_t temb_channels, int64_t groups, double eps = 1e-5,
           double dropout = 0.0, double output_scale = 1.0, bool scale_shift = false)
      : in_(in_channels), out_(out_channels), dropout_(dropout), output_scale_(output_scale), scale_shift_(scale_shift),
        norm1_(groups, in_channels, eps, NormActivation::silu), conv1_(in_channels, out_channels, 3, 1, 1),
        time_emb_proj_(temb_channels, scale_shift ? 2 * out_channels : out_channels),
        norm2_(groups, out_channels, eps, scale_shift ? NormActivation::none : NormActivation::silu),
        conv2_(out_channels, out_channels, 3, 1, 1) {
    HAZE_REQUIRE(dropout >= 0 && dropout < 1, "ResBlock: dropout must be in [0, 1), got ", dropout);
    HAZE_REQUIRE(std::isfinite(output_scale) && output_scale > 0, "ResBlock: output_scale must be finite and > 0, got ",
                 output_scale);
    if (in_channels != out_channels) shortcut_.emplace(in_channels, out_channels, 1);
  }

  int64_t in_channels() const { return in_; }
  int64_t out_channels() const { return out_; }

  // x [N, Cin, H, W], temb [N, E]. With a generator and dropout > 0 the
  // dropout mask is drawn (training); without one dropout is off. `share`
  // places x in a larger batch: the mask is that batch's, and the generator
  // moves past the whole batch's mask.
  Tensor<T, B> forward(const Tensor<T, B>& x, const Tensor<T, B>& temb, Generator* gen = nullptr,
                       BatchShare share = {}) {
    return run(x, temb, gen, true, share);
  }
  Tensor<T, B> infer(const Tensor<T, B>& x, const Tensor<T, B>& temb) { return run(x, temb, nullptr, false, {}); }

  // Returns dL/dx; dL/dtemb is kept for backward_temb().
  Tensor<T, B> backward(const Tensor<T, B>& dy_out) {
    HAZE_REQUIRE(cached_, "ResBlock::backward called without a matching forward");
    cached_ = false;
    Tensor<T, B> dy_scaled;
    if (output_scale_ != 1) {
      dy_scaled = dy_out.clone();
      ops::divide(dy_scaled, T(output_scale_));
    }
    const Tensor<T, B>& dy = output_scale_ != 1 ? dy_scaled : dy_out;
    Tensor<T, B> dh = conv2_.backward(dy);
    if (!mask_.empty()) {
      ops::mul(dh, mask_, dh);
      mask_ = Tensor<T, B>();
    }
    Tensor<T, B> dproj;
    if (scale_shift_) {
      // h2 = normed (1 + scale) + shift: both halves of the projection's
      // gradient are sums over H, W (dscale of dh2 normed, dshift of dh2).
      dh = silu2_.backward(dh);
      Tensor<T, B> dnormed(dh.shape());
      dproj = Tensor<T, B>(proj_.shape());
      ops::scale_shift_per_sample_channel_backward(dh, normed_, proj_, dnormed, dproj);
      normed_ = Tensor<T, B>(), proj_ = Tensor<T, B>();
      dh = norm2_.backward(dnormed);
    } else {
      dh = norm2_.backward(dh);
      // h = conv1(...) + proj(temb) broadcast: the projection's gradient sums dh over H, W.
      dproj = Tensor<T, B>({dh.dim(0), out_});
      ops::sum_axes(dh, 1, dh.dim(0) * out_, dh.dim(2) * dh.dim(3), dproj);
    }
    dtemb_ = silu_temb_.backward(time_emb_proj_.backward(dproj));
    Tensor<T, B> dx = norm1_.backward(conv1_.backward(dh));
    if (shortcut_) ops::axpy(T(1), shortcut_->backward(dy), dx);
    else ops::axpy(T(1), dy, dx);
    return dx;
  }

  const Tensor<T, B>& backward_temb() const { return dtemb_; }

  void parameters(Parameters<T, B>& out, std::string_view prefix) {
    norm1_.parameters(out, join_name(prefix, "norm1"));
    conv1_.parameters(out, join_name(prefix, "conv1"));
    time_emb_proj_.parameters(out, join_name(prefix, "time_emb_proj"));
    norm2_.parameters(out, join_name(prefix, "norm2"));
    conv2_.parameters(out, join_name(prefix, "conv2"));
    if (shortcut_) shortcut_->parameters(out, join_name(prefix, "conv_shortcut"));
  }

 private:
  Tensor<T, B> run(const Tensor<T, B>& x, const Tensor<T, B>& temb, Generator* gen, bool training,
                   BatchShare share) {
    x.require_nonempty("ResBlock::forward");
    temb.require_nonempty("ResBlock::forward (temb)");
    HAZE_REQUIRE(x.rank() == 4 && x.dim(1) == in_, "ResBlock: expects input [N, ", in_, ", H, W], got ", x.shape());
    HAZE_REQUIRE(temb.rank() == 2 && temb.dim(0) == x.dim(0), "ResBlock: time embedding ", temb.shape(),
                 " does not match the batch of ", x.shape());
    const auto step = [training](auto& layer, const Tensor<T, B>& in) {
      return training ? layer.forward(in) : layer.infer(in);
    };
    Tensor<T, B> h = step(conv1_, step(norm1_, x));  // norm1 ends in SiLU; norm2 too unless scale_shift
    Tensor<T, B> proj = step(time_emb_proj_, step(silu_temb_, temb));
    if (scale_shift_) {
      Tensor<T, B> normed = step(norm2_, h);
      Tensor<T, B> shifted(normed.shape());
      ops::scale_shift_per_sample_channel(normed, proj, shifted);
      h = step(silu2_, shifted);
      if (training) normed_ = std::move(normed), proj_ = std::move(proj);
    } else {
      ops::add_per_sample_channel(h, proj);
      h = step(norm2_, h);
    }
    if (training && gen && dropout_ > 0) {
      HAZE_REQUIRE(share.batch == 0 || (share.first >= 0 && share.first + h.dim(0) <= share.batch),
                   "ResBlock: share of ", h.dim(0), " images from ", share.first, " lies outside a batch of ",
                   share.batch);
      const int64_t per_image = h.numel() / h.dim(0), batch = share.batch > 0 ? share.batch : h.dim(0);
      mask_ = Tensor<T, B>(h.shape());
      ops::map_index(mask_, detail::DropoutMask<T>{gen->seed, gen->offset, dropout_, uint64_t(share.first * per_image)});
      gen->offset += static_cast<uint64_t>(philox::blocks_for(batch * per_image));
      ops::mul(h, mask_, h);
    }
    h = step(conv2_, h);
    if (shortcut_) ops::axpy(T(1), step(*shortcut_, x), h);
    else ops::axpy(T(1), x, h);
    if (output_scale_ != 1) ops::divide(h, T(output_scale_));
    if (training) cached_ = true;  // infer writes no member (see UNet::infer)
    return h;
  }

  int64_t in_, out_;
  double dropout_, output_scale_;
  bool scale_shift_;
  GroupNorm<T, B> norm1_;  // and SiLU
  Conv2d<T, B> conv1_;
  SiLU<T, B> silu_temb_;
  Linear<T, B> time_emb_proj_;
  GroupNorm<T, B> norm2_;  // and SiLU, unless scale_shift
  SiLU<T, B> silu2_;       // scale_shift's SiLU, after the scale and shift
  Conv2d<T, B> conv2_;
  std::optional<Conv2d<T, B>> shortcut_;
  Tensor<T, B> mask_;   // dropout mask of the forward, if any
  Tensor<T, B> normed_, proj_;  // scale_shift: norm2's output and the projection, for backward
  Tensor<T, B> dtemb_;  // dL/dtemb of the last backward
  bool cached_ = false;
};

}  // namespace haze::nn
