#pragma once
// The timestep embedding of DDPM / diffusers: for t and dim = 2 half,
//   f_i = exp(-ln(10000) i / (half - freq_shift))
//   sinusoid(t) = [cos(t f_0 ..), sin(t f_0 ..)]   (flip_sin_to_cos, diffusers' default)
//              or [sin(t f_0 ..), cos(t f_0 ..)]   (the original DDPM models: freq_shift 1, no flip)
// then TimestepEmbedding: linear_1 (dim -> E), SiLU, linear_2 (E -> E).
// The timesteps are host values (one per sample, possibly fractional); the
// sinusoid is computed in double on the host, which is exact enough and
// tiny, then uploaded.

#include <cmath>
#include <span>
#include <vector>

#include "haze/nn/activation.hpp"
#include "haze/nn/linear.hpp"

namespace haze::nn {

template <Real T, Backend B>
Tensor<T, B> sinusoidal_embedding(std::span<const double> timesteps, int64_t dim, bool flip_sin_to_cos = true,
                                  double freq_shift = 0) {
  HAZE_REQUIRE(dim >= 2 && dim % 2 == 0, "sinusoidal_embedding: dim must be even and >= 2, got ", dim);
  HAZE_REQUIRE(!timesteps.empty(), "sinusoidal_embedding: no timesteps");
  const int64_t half = dim / 2, n = static_cast<int64_t>(timesteps.size());
  HAZE_REQUIRE(std::isfinite(freq_shift) && freq_shift < double(half), "sinusoidal_embedding: freq_shift ",
               freq_shift, " must be below half the width, ", half);
  const int64_t cos_at = flip_sin_to_cos ? 0 : half, sin_at = half - cos_at;
  std::vector<T> host(static_cast<size_t>(n * dim));
  for (int64_t s = 0; s < n; ++s)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = timesteps[s] * std::exp(-std::log(10000.0) * double(i) / (double(half) - freq_shift));
      host[s * dim + cos_at + i] = static_cast<T>(std::cos(angle));
      host[s * dim + sin_at + i] = static_cast<T>(std::sin(angle));
    }
  return Tensor<T, B>::from_host({n, dim}, host);
}

template <Real T, Backend B>
class TimestepEmbedding {
 public:
  using value_type = T;
  using backend_type = B;

  TimestepEmbedding(int64_t in_dim, int64_t embed_dim) : in_dim_(in_dim), linear_1_(in_dim, embed_dim), linear_2_(embed_dim, embed_dim) {}

  int64_t in_dim() const { return in_dim_; }

  // sinusoid [N, in_dim] -> embedding [N, embed_dim]
  Tensor<T, B> forward(const Tensor<T, B>& sinusoid) { return linear_2_.forward(silu_.forward(linear_1_.forward(sinusoid))); }
  Tensor<T, B> infer(const Tensor<T, B>& sinusoid) const { return linear_2_.infer(silu_.infer(linear_1_.infer(sinusoid))); }

  // Returns the gradient with respect to the sinusoid (callers usually drop it).
  Tensor<T, B> backward(const Tensor<T, B>& dy) { return linear_1_.backward(silu_.backward(linear_2_.backward(dy))); }

  void parameters(Parameters<T, B>& out, std::string_view prefix) {
    linear_1_.parameters(out, join_name(prefix, "linear_1"));
    linear_2_.parameters(out, join_name(prefix, "linear_2"));
  }

 private:
  int64_t in_dim_;
  Linear<T, B> linear_1_;
  SiLU<T, B> silu_;
  Linear<T, B> linear_2_;
};

}  // namespace haze::nn
