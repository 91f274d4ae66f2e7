#pragma once
// Spatial self-attention block, as diffusers' Attention on the U-Net's
// feature maps (residual connection, GroupNorm first unless groups = 0):
//   h = GroupNorm(x) viewed as tokens [N, S = H W, C]
//   q, k, v = to_q(h), to_k(h), to_v(h)           (Linear C -> C each)
//   per head (d = head_dim channels):  P = softmax(q k^T / sqrt(d)),  o = P v
//   y = (x + to_out.0(o) viewed back as [N, C, H, W]) / output_scale
//   (output_scale: diffusers' rescale_output_factor, 1 but in a mid block)
// backward, per head:  dP = do v^T,  dv = P^T do,  dS = softmax'(P, dP) / sqrt(d),
//   dq = dS k,  dk = dS^T q; then through to_q/k/v (their input grads add up),
//   the transposes and GroupNorm, plus dy for the residual.
// Cached: q, k, v and P ([N, heads, S, S]); the Linears and GroupNorm cache
// handles on their inputs.

#include <cmath>
#include <optional>

#include "haze/nn/group_norm.hpp"
#include "haze/nn/linear.hpp"
#include "haze/ops/layout.hpp"
#include "haze/ops/softmax.hpp"

namespace haze::nn {

template <Real T, Backend B>
class Attention {
 public:
  using value_type = T;
  using backend_type = B;

  Attention(int64_t channels, int64_t head_dim, int64_t groups, double eps = 1e-5, double output_scale = 1.0)
      : channels_(channels), head_dim_(head_dim), heads_(head_dim > 0 ? channels / head_dim : 0),
        output_scale_(output_scale),
        to_q_(channels, channels), to_k_(channels, channels),
        to_v_(channels, channels), to_out_(channels, channels) {
    HAZE_REQUIRE(head_dim > 0 && channels % head_dim == 0, "Attention: attention_head_dim ", head_dim,
                 " does not divide ", channels, " channels");
    if (groups > 0) group_norm_.emplace(groups, channels, eps);
    HAZE_REQUIRE(std::isfinite(output_scale) && output_scale > 0,
                 "Attention: output_scale must be finite and > 0, got ", output_scale);
  }

  Tensor<T, B> forward(const Tensor<T, B>& x) { return run(x, true); }
  Tensor<T, B> infer(const Tensor<T, B>& x) { return run(x, false); }

  Tensor<T, B> backward(const Tensor<T, B>& dy_out) {
    require_cached(p_, "Attention");
    HAZE_REQUIRE(dy_out.shape() == shape_, "Attention::backward: dy ", dy_out.shape(), " should be ", shape_);
    Tensor<T, B> dy_scaled;
    if (output_scale_ != 1) {
      dy_scaled = dy_out.clone();
      ops::divide(dy_scaled, T(output_scale_));
    }
    const Tensor<T, B>& dy = output_scale_ != 1 ? dy_scaled : dy_out;
    const int64_t n = shape_[0], s = shape_[2] * shape_[3], c = channels_;
    Tensor<T, B> dy_tokens({n, s, c});
    ops::transpose12(dy.reshape({n, c, s}), dy_tokens);
    const Tensor<T, B> d_o = to_out_.backward(dy_tokens.reshape({n * s, c}));

    Tensor<T, B> dq({n * s, c}), dk({n * s, c}), dv({n * s, c}), dp(p_.shape());
    const T scale = T(1 / std::sqrt(double(head_dim_)));
    for (int64_t h = 0; h < heads_; ++h) {
      // dP = do v^T and dv = P^T do
      head_gemm(Transpose::No, Transpose::Yes, s, s, head_dim_, T(1), d_o, v_, dp, h);
      head_gemm(Transpose::Yes, Transpose::No, s, head_dim_, s, T(1), p_, d_o, dv, h);
    }
    ops::softmax_rows_backward(p_, dp);  // dp now holds dS (before the 1/sqrt(d))
    for (int64_t h = 0; h < heads_; ++h) {
      head_gemm(Transpose::No, Transpose::No, s, head_dim_, s, scale, dp, k_, dq, h);
      head_gemm(Transpose::Yes, Transpose::No, s, head_dim_, s, scale, dp, q_, dk, h);
    }
    Tensor<T, B> dh = to_q_.backward(dq);
    ops::axpy(T(1), to_k_.backward(dk), dh);
    ops::axpy(T(1), to_v_.backward(dv), dh);
    Tensor<T, B> dh_channels({n, c, s});
    ops::transpose12(dh.reshape({n, s, c}), dh_channels);
    Tensor<T, B> dx = group_norm_ ? group_norm_->backward(dh_channels.reshape(shape_)) : dh_channels.reshape(shape_);
    ops::axpy(T(1), dy, dx);  // the residual path
    q_ = Tensor<T, B>(), k_ = Tensor<T, B>(), v_ = Tensor<T, B>(), p_ = Tensor<T, B>();
    return dx;
  }

  void parameters(Parameters<T, B>& out, std::string_view prefix) {
    if (group_norm_) group_norm_->parameters(out, join_name(prefix, "group_norm"));
    to_q_.parameters(out, join_name(prefix, "to_q"));
    to_k_.parameters(out, join_name(prefix, "to_k"));
    to_v_.parameters(out, join_name(prefix, "to_v"));
    to_out_.parameters(out, join_name(prefix, "to_out.0"));
  }

 private:
  Tensor<T, B> run(const Tensor<T, B>& x, bool training) {
    x.require_nonempty("Attention::forward");
    HAZE_REQUIRE(x.rank() == 4 && x.dim(1) == channels_, "Attention: expects input [N, ", channels_,
                 ", H, W], got ", x.shape());
    const int64_t n = x.dim(0), s = x.dim(2) * x.dim(3), c = channels_;
    Tensor<T, B> tokens({n, s, c});
    if (group_norm_) {
      const Tensor<T, B> normed = training ? group_norm_->forward(x) : group_norm_->infer(x);
      ops::transpose12(normed.reshape({n, c, s}), tokens);
    } else {
      ops::transpose12(x.reshape({n, c, s}), tokens);
    }
    const Tensor<T, B> flat = tokens.reshape({n * s, c});
    Tensor<T, B> q = training ? to_q_.forward(flat) : to_q_.infer(flat);
    Tensor<T, B> k = training ? to_k_.forward(flat) : to_k_.infer(flat);
    Tensor<T, B> v = training ? to_v_.forward(flat) : to_v_.infer(flat);

    Tensor<T, B> p({n, heads_, s, s}), o({n * s, c});
    const T scale = T(1 / std::sqrt(double(head_dim_)));
    for (int64_t h = 0; h < heads_; ++h) head_gemm(Transpose::No, Transpose::Yes, s, s, head_dim_, scale, q, k, p, h);
    ops::softmax_rows(p);
    for (int64_t h = 0; h < heads_; ++h) head_gemm(Transpose::No, Transpose::No, s, head_dim_, s, T(1), p, v, o, h);

    const Tensor<T, B> out_tokens = training ? to_out_.forward(o) : to_out_.infer(o);
    Tensor<T, B> y({n, c, s});
    ops::transpose12(out_tokens.reshape({n, s, c}), y);
    ops::axpy(T(1), x.reshape({n, c, s}), y);
    if (output_scale_ != 1) ops::divide(y, T(output_scale_));
    if (training) {
      q_ = std::move(q), k_ = std::move(k), v_ = std::move(v), p_ = std::move(p);
      shape_ = x.shape();
    }
    return y.reshape(x.shape());
  }

  // C_h = alpha op(A_h) op(B_h) for head h of every sample (beta = 0). One
  // operand is always a score tensor [N, heads, S, S], holding head h at
  // offset h S S (batch stride heads S S); the others are token matrices
  // [N S, C], holding head h in columns h d .. h d + d - 1 (row pitch C,
  // batch stride S C).
  void head_gemm(Transpose ta, Transpose tb, int64_t M, int64_t N, int64_t K, T alpha, const Tensor<T, B>& a,
                 const Tensor<T, B>& b, Tensor<T, B>& c, int64_t h) const {
    const Tensor<T, B>& scores = a.rank() == 4 ? a : (b.rank() == 4 ? b : c);
    const int64_t n = scores.dim(0), s = scores.dim(2);
    struct View {
      int64_t offset, ld, stride;
    };
    const auto view = [&](const Tensor<T, B>& t) {
      return t.rank() == 4 ? View{h * s * s, s, heads_ * s * s} : View{h * head_dim_, channels_, s * channels_};
    };
    const View va = view(a), vb = view(b), vc = view(c);
    B::gemm(ta, tb, M, N, K, alpha, a.data() + va.offset, va.ld, va.stride, b.data() + vb.offset, vb.ld, vb.stride,
            T(0), c.data() + vc.offset, vc.ld, vc.stride, n);
  }

  int64_t channels_, head_dim_, heads_;
  double output_scale_;
  std::optional<GroupNorm<T, B>> group_norm_;  // none with groups = 0 (diffusers' norm_num_groups None)
  Linear<T, B> to_q_, to_k_, to_v_, to_out_;
  Tensor<T, B> q_, k_, v_, p_;  // [N S, C] x 3 and [N, heads, S, S]
  Shape shape_;                 // forward input shape
};

}  // namespace haze::nn
