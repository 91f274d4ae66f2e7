#pragma once
// Three 2-D distributions for toy diffusion runs, drawn from a seeded
// std::mt19937_64 and scaled to roughly unit spread:
//   moons     two interleaved half circles with Gaussian jitter 0.05
//   gaussians eight Gaussians (std 0.1) evenly on a circle of radius 2
//   swissroll the 2-D swiss roll t (cos t, sin t), t in [1.5 pi, 4.5 pi], / 5

#include <haze/core/error.hpp>

#include <cmath>
#include <numbers>
#include <random>
#include <string>
#include <vector>

namespace toy2d {

inline std::vector<double> sample_points(const std::string& name, int64_t n, uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(0, 1);
  std::normal_distribution<double> normal(0, 1);
  const double pi = std::numbers::pi;
  std::vector<double> out;
  out.reserve(size_t(2 * n));
  for (int64_t i = 0; i < n; ++i) {
    double x, y;
    if (name == "moons") {
      const double a = pi * uniform(engine);
      if (engine() & 1) x = std::cos(a), y = std::sin(a);
      else x = 1 - std::cos(a), y = 0.5 - std::sin(a);
      x = (x - 0.5) + 0.05 * normal(engine);
      y = (y - 0.25) * 2 + 0.05 * normal(engine);
    } else if (name == "gaussians") {
      const double a = 2 * pi * double(engine() % 8) / 8;
      x = 2 * std::cos(a) + 0.1 * normal(engine);
      y = 2 * std::sin(a) + 0.1 * normal(engine);
    } else if (name == "swissroll") {
      const double t = 1.5 * pi * (1 + 2 * uniform(engine));
      x = t * std::cos(t) / 5 + 0.05 * normal(engine);
      y = t * std::sin(t) / 5 + 0.05 * normal(engine);
    } else {
      HAZE_FAIL("unknown toy dataset '", name, "' (known: moons, gaussians, swissroll)");
    }
    out.push_back(x);
    out.push_back(y);
  }
  return out;
}

}  // namespace toy2d
