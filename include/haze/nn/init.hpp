#pragma once
// Parameter initialisation with PyTorch's defaults, drawn from Philox so a
// seed gives the same model on every backend:
//   Linear / Conv2d weight and bias  U(-1/sqrt(fan_in), 1/sqrt(fan_in))
//     (kaiming_uniform with a = sqrt(5), and the bias rule of nn.Linear);
//     fan_in = weight.numel / out_features, and a bias uses its weight's;
//   GroupNorm scale 1, shift 0;  embedding tables N(0, 1).
// Parameters are visited in parameters() order; each tensor takes its own
// run of Philox blocks, so adding a layer at the end changes no earlier one.

#include <cmath>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "haze/core/generator.hpp"
#include "haze/nn/module.hpp"
#include "haze/ops/random.hpp"

namespace haze::nn {

namespace detail {

// n uniforms in (-bound, bound) from consecutive blocks of gen, on the host.
inline std::vector<double> uniform_values(int64_t n, double bound, Generator& gen) {
  std::vector<double> out(static_cast<size_t>(n));
  const philox::Key key = philox::key_of(gen.seed);
  for (int64_t i = 0; i < n; i += 4) {
    const philox::Block bits = philox::philox4x32_10(philox::counter_of(gen.offset++), key);
    for (int64_t j = 0; j < 4 && i + j < n; ++j) {
      const double u = (static_cast<double>(bits.v[j]) + 0.5) * 0x1p-32;  // in (0, 1)
      out[static_cast<size_t>(i + j)] = bound * (2 * u - 1);
    }
  }
  return out;
}

inline std::string_view owner_of(std::string_view name) {
  const size_t dot = name.rfind('.');
  return dot == std::string_view::npos ? std::string_view{} : name.substr(0, dot);
}

}  // namespace detail

template <class Module>
void init_parameters(Module& model, uint64_t seed) {
  using T = typename Module::value_type;
  Generator gen{seed};
  auto params = parameters_of(model);
  std::unordered_map<std::string, int64_t> fan_in;  // layer prefix -> its weight's fan-in
  for (const auto& p : params)
    if (p.kind == ParamKind::Weight) fan_in[std::string(detail::owner_of(p.name))] = p.value->numel() / p.value->dim(0);

  for (auto& p : params) {
    Tensor<T, typename Module::backend_type>& v = *p.value;
    switch (p.kind) {
      case ParamKind::NormScale: ops::fill(v, T(1)); break;
      case ParamKind::NormShift: ops::fill(v, T(0)); break;
      case ParamKind::Embedding: randn(v, gen); break;
      case ParamKind::Frozen: break;  // its layer set it when it was built
      case ParamKind::Weight:
      case ParamKind::Bias: {
        const auto it = fan_in.find(std::string(detail::owner_of(p.name)));
        HAZE_REQUIRE(it != fan_in.end(), "init_parameters: bias '", p.name, "' has no weight beside it");
        const std::vector<double> u = detail::uniform_values(v.numel(), 1 / std::sqrt(double(it->second)), gen);
        v.assign_from_host(std::vector<T>(u.begin(), u.end()));
        break;
      }
    }
  }
}

}  // namespace haze::nn
