#pragma once
// The contract every layer in haze::nn keeps (requires / ensures):
//
//   Tensor forward(const Tensor& x [, ...])
//     requires: x has the shape the layer documents.
//     ensures:  returns y; caches what backward needs (at most handles on
//               its inputs and a few small statistics, never a second copy
//               of an activation); the caller must not overwrite x before
//               the matching backward.
//   Tensor backward(const Tensor& dy)
//     requires: a forward since the last backward, dy shaped like its y.
//     ensures:  returns dL/dx (assigned, =); ADDS dL/dparameter into each
//               parameter's grad (+=), so gradients accumulate across calls
//               until zero_grad(); drops the cache. A backward without a
//               matching forward throws haze::Error.
//   Tensor infer(const Tensor& x [, ...])
//     the same y as forward, caching nothing (sampling).
//   void parameters(Parameters& out, prefix)
//     appends (name, value, grad) for every parameter, names being
//     diffusers' state_dict names under `prefix` ("down_blocks.1.resnets.0.conv1.weight").
//   void zero_grad()
//
// Layers are class templates over <T, B>; all memory is backend memory.

#include <string>
#include <string_view>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/core/tensor.hpp"
#include "haze/ops/elementwise.hpp"

namespace haze::nn {

// A parameter and its gradient, both of the parameter's shape.
template <Real T, Backend B>
struct Param {
  Tensor<T, B> value;
  Tensor<T, B> grad;

  explicit Param(Shape shape) : value(Tensor<T, B>::zeros(shape)), grad(Tensor<T, B>::zeros(shape)) {}
};

// What a parameter is for: initialisers and optimisers treat them apart
// (weight decay usually skips biases and norm parameters). Frozen: part of
// the model and of its files, never trained (diffusers' requires_grad=False,
// e.g. the random frequencies of a Fourier time projection): backward adds
// no gradient to it, and the optimizer and the EMA leave it alone.
enum class ParamKind { Weight, Bias, NormScale, NormShift, Embedding, Frozen };

template <Real T, Backend B>
struct ParameterRef {
  std::string name;
  Tensor<T, B>* value;
  Tensor<T, B>* grad;
  ParamKind kind;
};

template <Real T, Backend B>
using Parameters = std::vector<ParameterRef<T, B>>;

inline std::string join_name(std::string_view prefix, std::string_view name) {
  return prefix.empty() ? std::string(name) : std::string(prefix) + "." + std::string(name);
}

template <Real T, Backend B>
void add_parameter(Parameters<T, B>& out, std::string_view prefix, std::string_view name, Param<T, B>& p,
                   ParamKind kind) {
  out.push_back({join_name(prefix, name), &p.value, &p.grad, kind});
}

// Every module's parameters, listed from the top.
template <class Module>
auto parameters_of(Module& model) {
  Parameters<typename Module::value_type, typename Module::backend_type> out;
  model.parameters(out, "");
  return out;
}

template <class Module>
void zero_grad(Module& model) {
  for (auto& p : parameters_of(model)) ops::fill(*p.grad, typename Module::value_type(0));
}

// Where a share of a batch sits in the whole batch: images [first, first + n)
// of `batch` (0: the share is the whole batch). Random draws made per
// element (dropout masks) are indexed by the element's place in the whole
// batch, so a batch run in shares draws what the whole batch would.
struct BatchShare {
  int64_t first = 0;
  int64_t batch = 0;
};

// A handle on a forward input kept for backward (an alias, not a copy).
template <Real T, Backend B>
Tensor<T, B> keep(const Tensor<T, B>& x) {
  return x.reshape(x.shape());
}

template <Real T, Backend B>
void require_cached(const Tensor<T, B>& cache, const char* layer) {
  HAZE_REQUIRE(!cache.empty(), layer, "::backward called without a matching forward");
}

}  // namespace haze::nn
