#pragma once
// diffusers' GaussianFourierProjection (time_embedding_type "fourier", the
// score-SDE models, whose "timestep" is the noise level sigma > 0): for
// random frequencies w [C],
//   angle_i = ((ln sigma * w_i) * 2) * pi      (diffusers' order of products)
//   out = [sin(angle), cos(angle)]              [N, 2 C]
// w is a frozen parameter ("weight"): saved and loaded with the model, never
// trained. A new layer draws it N(0, 16^2) (diffusers' scale 16) from a
// fixed seed, so that two layers built alike are alike. Its input is one
// host value per sample and gets no gradient, as the sinusoid's does not.

#include <cmath>
#include <span>
#include <vector>

#include "haze/core/generator.hpp"
#include "haze/core/macros.hpp"
#include "haze/nn/module.hpp"
#include "haze/ops/random.hpp"

namespace haze::nn {

namespace detail {

template <class T>
struct FourierFeatures {  // element i of [N, 2 width]
  const T* frequencies;
  const double* log_sigma;
  int64_t width;
  HAZE_HD T operator()(int64_t i) const {
    const int64_t n = i / (2 * width), j = i % (2 * width), k = j < width ? j : j - width;
    const double angle = log_sigma[n] * double(frequencies[k]) * 2.0 * 3.141592653589793;
    return T(j < width ? ::sin(angle) : ::cos(angle));
  }
};

template <class T>
struct TimesFactor {
  T factor;
  HAZE_HD T operator()(T v) const { return v * factor; }
};

}  // namespace detail

template <Real T, Backend B>
class FourierProjection {
 public:
  using value_type = T;
  using backend_type = B;
  static constexpr double scale = 16;       // diffusers' UNet2DModel passes scale=16
  static constexpr uint64_t seed = 0x466f75;  // any fixed value: a new layer's frequencies

  explicit FourierProjection(int64_t width) : width_(width), weight_(Shape{width}) {
    HAZE_REQUIRE(width > 0, "FourierProjection: width must be > 0, got ", width);
    Generator gen{seed};
    randn(weight_.value, gen);
    ops::map(weight_.value, detail::TimesFactor<T>{T(scale)}, weight_.value);  // (a map: Meta has no B::scale)
  }

  int64_t out_dim() const { return 2 * width_; }

  // sigmas [N] on the host, each finite and > 0 -> features [N, 2 C]
  Tensor<T, B> project(std::span<const double> sigmas) const {
    HAZE_REQUIRE(!sigmas.empty(), "FourierProjection: no inputs");
    std::vector<double> logs(sigmas.size());
    for (size_t n = 0; n < sigmas.size(); ++n) {
      HAZE_REQUIRE(std::isfinite(sigmas[n]) && sigmas[n] > 0, "FourierProjection: input ", sigmas[n], " of sample ",
                   n, " is not finite and > 0 (the projection takes its logarithm: time_embedding_type fourier "
                   "models take the noise level sigma as their timestep)");
      logs[n] = std::log(sigmas[n]);
    }
    const auto log_sigma = Tensor<double, B>::from_host({int64_t(logs.size())}, logs);
    Tensor<T, B> y({int64_t(sigmas.size()), out_dim()});
    ops::map_index(y, detail::FourierFeatures<T>{weight_.value.data(), log_sigma.data(), width_});
    return y;
  }

  void parameters(Parameters<T, B>& out, std::string_view prefix) {
    add_parameter(out, prefix, "weight", weight_, ParamKind::Frozen);
  }

 private:
  int64_t width_;
  Param<T, B> weight_;
};

}  // namespace haze::nn
