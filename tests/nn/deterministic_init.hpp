#pragma once
// Parameter values from a formula both this file and tests/golden/nn_golden.py
// compute bit for bit: element k of the parameter named `name` gets
//   z = splitmix64(fnv1a64(name) ^ (k * 0x9E3779B97F4A7C15)),  u = (z >> 11) 2^-53,  r = 2u - 1
// scaled by the parameter's kind (weights r sqrt(3 / fan_in), biases 0.1 r,
// norm scales 1 + 0.1 r, norm shifts 0.1 r, embeddings r). PyTorch and haze
// then hold the same weights without shipping them.

#include <haze/nn/module.hpp>

#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

namespace haze::test {

inline uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

inline uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline double deterministic_uniform(std::string_view name, uint64_t k) {
  const uint64_t z = splitmix64(fnv1a64(name) ^ (k * 0x9E3779B97F4A7C15ull));
  return double(z >> 11) * 0x1p-53;
}

template <class Module>
void deterministic_init(Module& model) {
  using T = typename Module::value_type;
  for (auto& p : nn::parameters_of(model)) {
    const int64_t n = p.value->numel();
    const double fan_in = double(n) / double(p.value->dim(0));
    std::vector<T> v(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) {
      const double r = 2 * deterministic_uniform(p.name, uint64_t(k)) - 1;
      switch (p.kind) {
        case nn::ParamKind::Weight: v[k] = T(r * std::sqrt(3.0 / fan_in)); break;
        case nn::ParamKind::Bias: v[k] = T(0.1 * r); break;
        case nn::ParamKind::NormScale: v[k] = T(1 + 0.1 * r); break;
        case nn::ParamKind::NormShift: v[k] = T(0.1 * r); break;
        case nn::ParamKind::Embedding: v[k] = T(r); break;
        case nn::ParamKind::Frozen: v[k] = T(4 * r); break;
      }
    }
    p.value->assign_from_host(v);
  }
}

}  // namespace haze::test
