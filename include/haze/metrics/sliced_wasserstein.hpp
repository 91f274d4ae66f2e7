#pragma once
// The sliced Wasserstein-1 distance between two point clouds of equal size
// in R^dim (row-major, one point per row):
//
//   SW1(a, b) = (1/P) sum_p W1(<a, theta_p>, <b, theta_p>),
//   W1(u, v)  = (1/n) sum_i |sort(u)_i - sort(v)_i|        (1-D, equal sizes)
//
// over P random unit directions theta_p. The directions are normalised
// Gaussian vectors whose normals come from a seeded std::mt19937_64 through
// Box-Muller written out here (std::normal_distribution's algorithm is left
// to the standard library), so a seed gives the same directions, and the same
// distance, with every compiler. In 1-D every direction is +-1 and SW1 is W1.
//
// Host only.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <span>
#include <vector>

#include "haze/core/error.hpp"

namespace haze::metrics {

namespace detail {

// A uniform double in (0, 1]: 53 random bits, never 0 (Box-Muller takes its log).
inline double uniform_open_closed(std::mt19937_64& engine) { return (double(engine() >> 11) + 1.0) * 0x1p-53; }

// A direction on the unit sphere in R^dim.
inline void random_direction(std::mt19937_64& engine, std::vector<double>& theta) {
  double norm2 = 0;
  while (norm2 == 0) {  // a zero draw has probability ~0; redraw rather than divide by it
    for (size_t i = 0; i < theta.size(); i += 2) {
      const double r = std::sqrt(-2 * std::log(uniform_open_closed(engine)));
      const double angle = 2 * std::numbers::pi * uniform_open_closed(engine);
      theta[i] = r * std::cos(angle);
      if (i + 1 < theta.size()) theta[i + 1] = r * std::sin(angle);
    }
    norm2 = 0;
    for (double t : theta) norm2 += t * t;
  }
  const double inv = 1 / std::sqrt(norm2);
  for (double& t : theta) t *= inv;
}

}  // namespace detail

inline double sliced_wasserstein(std::span<const double> a, std::span<const double> b, int64_t dim, int projections,
                                 uint64_t seed) {
  HAZE_REQUIRE(dim >= 1, "sliced_wasserstein: dim must be >= 1, got ", dim);
  HAZE_REQUIRE(projections >= 1, "sliced_wasserstein: projections must be >= 1, got ", projections);
  HAZE_REQUIRE(!a.empty() && a.size() % size_t(dim) == 0, "sliced_wasserstein: cloud a holds ", a.size(),
               " values, not a positive multiple of dim ", dim);
  HAZE_REQUIRE(a.size() == b.size(), "sliced_wasserstein: the clouds differ in size: a holds ", a.size(),
               " values, b holds ", b.size(), " (dim ", dim, ")");
  const size_t n = a.size() / size_t(dim), d = size_t(dim);
  std::mt19937_64 engine(seed);
  std::vector<double> theta(d), pa(n), pb(n);
  double total = 0;
  for (int p = 0; p < projections; ++p) {
    detail::random_direction(engine, theta);
    for (size_t i = 0; i < n; ++i) {
      double u = 0, v = 0;
      for (size_t j = 0; j < d; ++j) {
        u += theta[j] * a[i * d + j];
        v += theta[j] * b[i * d + j];
      }
      pa[i] = u;
      pb[i] = v;
    }
    std::sort(pa.begin(), pa.end());
    std::sort(pb.begin(), pb.end());
    double w = 0;
    for (size_t i = 0; i < n; ++i) w += std::abs(pa[i] - pb[i]);
    total += w / double(n);
  }
  return total / projections;
}

}  // namespace haze::metrics
