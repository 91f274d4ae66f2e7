#pragma once
// GroupNorm (Wu & He 2018): x [N, C, H, W], channels split into G groups of
// M = C/G * H * W elements each, per (n, g):
//   xhat = (x - mean) * rstd,  rstd = 1 / sqrt(var + eps),  y = gamma[c] xhat + beta[c]
// backward, with g = dy * gamma[c] and means over the group:
//   dbeta += sum dy,  dgamma += sum dy * xhat,
//   dx = rstd (g - mean(g) - xhat mean(g * xhat))
// The cache is a handle on x plus mean and rstd ([N, G] each). On the Cpu
// the backward reads dy and x twice: once for each plane's sum dy and sum
// dy xhat (all four sums above follow from those), once to write dx.
//
// With NormActivation::silu the layer is SiLU(GroupNorm(x)) in the same
// passes (what every ResBlock and the UNet's output run): forward writes
// SiLU(y) straight away, and backward recomputes y from x to turn dL/dSiLU
// into dL/dy while it sums the planes. One sweep of the activation less
// each way, and no second cached tensor.

#include <cmath>

#include "haze/core/macros.hpp"
#include "haze/nn/activation.hpp"
#include "haze/nn/module.hpp"
#include "haze/ops/layout.hpp"
#include "haze/ops/reduce.hpp"

namespace haze::nn {

// What a GroupNorm applies to its output in the same pass.
enum class NormActivation { none, silu };

namespace detail {

// Where an element sits: its (n, c) plane of H W elements, that plane's
// channel, and its (n, g) statistic.
struct PlaneIndex {
  int64_t C, plane, per_group_channels;
  HAZE_HD int64_t channel(int64_t nc) const { return nc % C; }
  HAZE_HD int64_t group(int64_t nc) const { return nc / per_group_channels; }  // = n * G + g
};

// The elementwise kernels below are each written as plane(nc), the
// constants one (n, c) plane shares, and element(i, constants). A backend
// that prefers row calls (the Cpu) runs a plane per call, so the constants
// are found once and the loop vectorises; a GPU runs an element per call:
// N C H W threads, neighbouring threads on neighbouring elements.
template <class K>
struct PlaneByPlane {
  K kernel;
  HAZE_HD void operator()(int64_t nc) const {
    const auto constants = kernel.plane(nc);
    const int64_t base = nc * kernel.at.plane;
    for (int64_t i = base; i < base + kernel.at.plane; ++i) kernel.element(i, constants);
  }
};

template <class K>
struct ElementByElement {
  K kernel;
  HAZE_HD void operator()(int64_t i) const { kernel.element(i, kernel.plane(i / kernel.at.plane)); }
};

template <class B, class K>
void for_each_plane_element(int64_t planes, const K& kernel) {
  if constexpr (prefers_row_calls<B>) B::for_each_index(planes, PlaneByPlane<K>{kernel}, kernel.at.plane);
  else B::for_each_index(planes * kernel.at.plane, ElementByElement<K>{kernel});
}

template <class T>
struct ShiftedSquare {  // (x - mean[m])^2
  const T* mean;
  HAZE_HD Accumulator operator()(T v, int64_t m) const {
    const Accumulator d = Accumulator(v) - Accumulator(mean[m]);
    return d * d;
  }
};

// The affine map of one plane, y = x scale + shift: one expression, so the
// forward and the fused backward's recomputation give y the same bits.
template <class T>
struct PlaneAffine {
  T scale, shift;
  HAZE_HD T operator()(T x) const { return x * scale + shift; }
};

template <class T>
HAZE_HD PlaneAffine<T> plane_affine(const T* mean, const T* rstd, const T* gamma, const T* beta, int64_t c, int64_t s) {
  const T scale = gamma[c] * rstd[s];
  return {scale, beta[c] - mean[s] * scale};
}

template <class T, bool Silu>
struct Normalize {  // y = gamma (x - mean) rstd + beta, then SiLU(y) if Silu
  const T *x, *mean, *rstd, *gamma, *beta;
  T* y;
  PlaneIndex at;
  HAZE_HD PlaneAffine<T> plane(int64_t nc) const {
    return plane_affine(mean, rstd, gamma, beta, at.channel(nc), at.group(nc));
  }
  HAZE_HD void element(int64_t i, const PlaneAffine<T>& affine) const {
    if constexpr (Silu) y[i] = SiluForward{}(affine(x[i]));
    else y[i] = affine(x[i]);
  }
};

// For the fused SiLU: dy = dL/dy from d_out = dL/dSiLU(y), with y
// recomputed from x.
template <class T>
struct SiluGradientOfNormalized {
  const T *d_out, *x, *mean, *rstd, *gamma, *beta;
  T* dy;
  PlaneIndex at;
  HAZE_HD PlaneAffine<T> plane(int64_t nc) const {
    return plane_affine(mean, rstd, gamma, beta, at.channel(nc), at.group(nc));
  }
  HAZE_HD void element(int64_t i, const PlaneAffine<T>& affine) const {
    dy[i] = SiluBackward{}(affine(x[i]), d_out[i]);
  }
};

// dy xhat, for the GPU's form of the plane sums: each term rounded to T
// once before a sum in double (the Cpu sums the double products directly).
template <class T>
struct GradientTimesXhat {
  struct Statistic {
    T mean, rstd;
  };
  const T *dy, *x, *mean, *rstd;
  T* out;
  PlaneIndex at;
  HAZE_HD Statistic plane(int64_t nc) const { return {mean[at.group(nc)], rstd[at.group(nc)]}; }
  HAZE_HD void element(int64_t i, const Statistic& s) const {
    out[i] = T(Accumulator(dy[i]) * Accumulator((x[i] - s.mean) * s.rstd));
  }
};

template <class T>
struct PlaneGradientSums {  // per (n, c) plane: sum dy and sum dy xhat
  const T *dy, *x, *mean, *rstd;
  T *sum_dy, *sum_dy_xhat;
  PlaneIndex at;
  HAZE_HD void operator()(int64_t nc) const {
    const int64_t s = at.group(nc);
    const T *d = dy + nc * at.plane, *v = x + nc * at.plane;
    const T m = mean[s], r = rstd[s];
    sum_dy[nc] = T(ops::detail::lane_sum([d](int64_t i) { return Accumulator(d[i]); }, at.plane));
    sum_dy_xhat[nc] =
        T(ops::detail::lane_sum([d, v, m, r](int64_t i) { return Accumulator(d[i]) * Accumulator((v[i] - m) * r); },
                                at.plane));
  }
};

// The fused SiLU's backward on the Cpu: a plane's dL/dy, then its sums
// while it is in cache.
template <class T>
struct SiluGradientThenPlaneSums {
  PlaneByPlane<SiluGradientOfNormalized<T>> gradient;
  PlaneGradientSums<T> sums;
  HAZE_HD void operator()(int64_t nc) const {
    gradient(nc);
    sums(nc);
  }
};

template <class T>
struct GroupGradientSums {  // per (n, g): sum g and sum g xhat from the plane sums, g = dy gamma[c]
  const T *sum_dy, *sum_dy_xhat, *gamma;
  T *sum_g, *sum_gx;
  int64_t C, per_group_channels;
  HAZE_HD void operator()(int64_t ng) const {
    const int64_t first = ng * per_group_channels;  // plane index n C + g (C / G)
    Accumulator a = 0, b = 0;
    for (int64_t nc = first; nc < first + per_group_channels; ++nc) {
      const Accumulator g = gamma[nc % C];
      a += g * Accumulator(sum_dy[nc]);
      b += g * Accumulator(sum_dy_xhat[nc]);
    }
    sum_g[ng] = T(a);
    sum_gx[ng] = T(b);
  }
};

template <class T>
struct GroupNormInputGradient {  // dx = rstd (dy gamma - s1/M - xhat s2/M)
  struct Constants {
    T r, m, a, b, g;
  };
  const T *dy, *x, *mean, *rstd, *gamma, *sum_g, *sum_gx;
  T* dx;
  PlaneIndex at;
  T inv_m;
  HAZE_HD Constants plane(int64_t nc) const {
    const int64_t s = at.group(nc);
    return {rstd[s], mean[s], sum_g[s] * inv_m, sum_gx[s] * inv_m, gamma[at.channel(nc)]};
  }
  HAZE_HD void element(int64_t i, const Constants& k) const {
    dx[i] = k.r * (dy[i] * k.g - k.a - (x[i] - k.m) * k.r * k.b);
  }
};

template <class T>
struct RsqrtOfMean {  // sum of squares -> 1 / sqrt(sum / m + eps)
  T inv_m, eps;
  HAZE_HD T operator()(T sum_sq) const { return T(1) / sqrt(sum_sq * inv_m + eps); }
};

}  // namespace detail

template <Real T, Backend B>
class GroupNorm {
 public:
  using value_type = T;
  using backend_type = B;

  GroupNorm(int64_t groups, int64_t channels, double eps = 1e-5, NormActivation then = NormActivation::none)
      : groups_(groups), channels_(channels), eps_(eps), then_(then), weight_(Shape{channels}), bias_(Shape{channels}) {
    HAZE_REQUIRE(groups > 0 && channels > 0 && channels % groups == 0, "GroupNorm: ", groups,
                 " groups do not divide ", channels, " channels");
    HAZE_REQUIRE(eps > 0, "GroupNorm: eps must be > 0, got ", eps);
    ops::fill(weight_.value, T(1));
  }

  Tensor<T, B> forward(const Tensor<T, B>& x) {
    Tensor<T, B> y = normalize(x, mean_, rstd_);
    x_ = keep(x);
    return y;
  }

  Tensor<T, B> infer(const Tensor<T, B>& x) const {
    Tensor<T, B> mean, rstd;
    return normalize(x, mean, rstd);
  }

  // d_out: the gradient of the layer's output (after the SiLU, if fused).
  Tensor<T, B> backward(const Tensor<T, B>& d_out) {
    require_cached(x_, "GroupNorm");
    ops::detail::require_same_shape("GroupNorm::backward", "dy", d_out, "x", x_);
    const auto at = index(x_);
    const int64_t n = x_.dim(0), planes = n * channels_;
    // Two passes over the activation: the per-plane sums (after the fused
    // SiLU's gradient, plane by plane), then dx.
    const bool silu = then_ == NormActivation::silu;
    Tensor<T, B> silu_dy;
    if (silu) silu_dy = Tensor<T, B>(x_.shape());
    const Tensor<T, B>& dy = silu ? silu_dy : d_out;
    Tensor<T, B> plane_dy({n, channels_}), plane_dy_xhat({n, channels_});
    const detail::SiluGradientOfNormalized<T> gradient{
        d_out.data(), x_.data(), mean_.data(), rstd_.data(), weight_.value.data(), bias_.value.data(),
        silu_dy.data(), at};
    if constexpr (prefers_row_calls<B>) {  // a plane per thread: its sums in one pass while it is in cache
      const detail::PlaneGradientSums<T> sums{dy.data(), x_.data(), mean_.data(), rstd_.data(), plane_dy.data(),
                                              plane_dy_xhat.data(), at};
      if (silu) B::for_each_index(planes, detail::SiluGradientThenPlaneSums<T>{{gradient}, sums}, at.plane);
      else B::for_each_index(planes, sums, at.plane);
    } else {  // elementwise passes and segmented reductions
      if (silu) detail::for_each_plane_element<B>(planes, gradient);
      Tensor<T, B> dy_xhat(x_.shape());
      detail::for_each_plane_element<B>(
          planes, detail::GradientTimesXhat<T>{dy.data(), x_.data(), mean_.data(), rstd_.data(), dy_xhat.data(), at});
      ops::sum_axes(dy, 1, planes, at.plane, plane_dy);
      ops::sum_axes(dy_xhat, 1, planes, at.plane, plane_dy_xhat);
    }
    ops::sum_columns(plane_dy, bias_.grad, ops::Identity{}, T(1));         // dbeta += sum dy
    ops::sum_columns(plane_dy_xhat, weight_.grad, ops::Identity{}, T(1));  // dgamma += sum dy xhat
    Tensor<T, B> sum_gx({n, groups_}), sum_g({n, groups_});
    B::for_each_index(n * groups_,
                      detail::GroupGradientSums<T>{plane_dy.data(), plane_dy_xhat.data(), weight_.value.data(),
                                                   sum_g.data(), sum_gx.data(), channels_, at.per_group_channels},
                      at.per_group_channels);
    Tensor<T, B> dx(x_.shape());
    const T inv_m = T(1) / static_cast<T>(x_.numel() / (n * groups_));
    detail::for_each_plane_element<B>(
        planes, detail::GroupNormInputGradient<T>{dy.data(), x_.data(), mean_.data(), rstd_.data(),
                                                  weight_.value.data(), sum_g.data(), sum_gx.data(), dx.data(), at,
                                                  inv_m});
    x_ = Tensor<T, B>();
    return dx;
  }

  void parameters(Parameters<T, B>& out, std::string_view prefix) {
    add_parameter(out, prefix, "weight", weight_, ParamKind::NormScale);
    add_parameter(out, prefix, "bias", bias_, ParamKind::NormShift);
  }

 private:
  detail::PlaneIndex index(const Tensor<T, B>& x) const { return {channels_, x.dim(2) * x.dim(3), channels_ / groups_}; }

  Tensor<T, B> normalize(const Tensor<T, B>& x, Tensor<T, B>& mean, Tensor<T, B>& rstd) const {
    x.require_nonempty("GroupNorm::forward");
    HAZE_REQUIRE(x.rank() == 4 && x.dim(1) == channels_, "GroupNorm: expects input [N, ", channels_,
                 ", H, W], got ", x.shape());
    const int64_t n = x.dim(0);
    const double m = double(x.numel() / (n * groups_));
    mean = Tensor<T, B>({n, groups_});
    rstd = Tensor<T, B>({n, groups_});
    ops::sum_per_group(x, groups_, mean);
    ops::scale(mean, static_cast<T>(1 / m));
    // Two passes (mean, then squared deviations) keep the variance accurate
    // when |mean| >> std.
    ops::sum_per_group(x, groups_, rstd, detail::ShiftedSquare<T>{mean.data()});
    ops::map(rstd, detail::RsqrtOfMean<T>{T(1 / m), T(eps_)}, rstd);
    Tensor<T, B> y(x.shape());
    const auto at = index(x);
    const auto normalize_into = [&](auto kernel) {
      kernel = {x.data(), mean.data(), rstd.data(), weight_.value.data(), bias_.value.data(), y.data(), at};
      detail::for_each_plane_element<B>(n * channels_, kernel);
    };
    if (then_ == NormActivation::silu) normalize_into(detail::Normalize<T, true>{});
    else normalize_into(detail::Normalize<T, false>{});
    return y;
  }

  int64_t groups_, channels_;
  double eps_;
  NormActivation then_;
  Param<T, B> weight_, bias_;
  Tensor<T, B> x_, mean_, rstd_;  // forward input; per-(n, g) statistics [N, G]
};

}  // namespace haze::nn
