#pragma once
// gradcheck: a layer's hand-written backward against central finite
// differences, for users' own layers as much as for haze's. With the loss
// L = sum(y * dy) for a fixed random dy, it compares dL/d(input) from
// backward and dL/d(parameter) accumulated into the grads with
//   (L(v + h) - L(v - h)) / 2h
// at `samples` random elements of every input and every parameter tensor.
// Run it in double: the error measure is |analytic - numeric| /
// max(|analytic|, |numeric|, floor). The floor (1e-3) keeps elements whose
// gradient is ~0 (some are exactly 0, like an attention key bias) from
// dividing the difference quotient's rounding noise, about
// eps |L| / h ~ 2e-10 for |L| ~ 10 at h = 1e-5, by nothing: such elements
// are held to an absolute 1e-9 when the criterion is 1e-6.

#include <algorithm>
#include <cmath>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "haze/core/tensor.hpp"
#include "haze/nn/module.hpp"
#include "haze/ops/random.hpp"

namespace haze::verify {

struct GradcheckEntry {
  std::string name;  // "input 0" or a parameter name
  int checked = 0;
  double worst = 0;  // largest error measure
};

struct GradcheckReport {
  std::vector<GradcheckEntry> entries;
  double worst() const {
    double w = 0;
    for (const auto& e : entries) w = std::max(w, e.worst);
    return w;
  }
  friend std::ostream& operator<<(std::ostream& os, const GradcheckReport& r) {
    for (const auto& e : r.entries) os << "  " << e.name << ": " << e.checked << " checked, worst " << e.worst << "\n";
    return os;
  }
};

struct GradcheckOptions {
  int samples = 8;
  double step = 1e-5;
  double floor = 1e-3;
  uint64_t seed = 1;
};

// run(): the forward pass over `inputs` (which gradcheck perturbs in place),
// returning y. backward(dy): the backward pass, returning dL/d(input) for
// each input, in order.
template <class T, class B, class Module>
GradcheckReport gradcheck(Module& model, std::vector<Tensor<T, B>*> inputs, std::function<Tensor<T, B>()> run,
                          std::function<std::vector<Tensor<T, B>>(const Tensor<T, B>&)> backward,
                          GradcheckOptions options = {}) {
  auto params = nn::parameters_of(model);
  for (auto& p : params) ops::fill(*p.grad, T(0));
  Tensor<T, B> y = run();
  Tensor<T, B> dy(y.shape());
  Generator gen{options.seed};
  randn(dy, gen);
  const std::vector<T> dy_host = dy.to_host();
  const std::vector<Tensor<T, B>> dinputs = backward(dy);
  HAZE_REQUIRE(dinputs.size() == inputs.size(), "gradcheck: backward returned ", dinputs.size(),
               " input gradients for ", inputs.size(), " inputs");

  const auto loss = [&] {
    const std::vector<T> out = run().to_host();
    double l = 0;
    for (size_t i = 0; i < out.size(); ++i) l += double(out[i]) * double(dy_host[i]);
    return l;
  };
  std::mt19937_64 pick(options.seed);
  const auto probe = [&](const std::string& name, Tensor<T, B>& value, const std::vector<T>& analytic) {
    GradcheckEntry entry{name};
    std::vector<T> v = value.to_host();
    std::uniform_int_distribution<size_t> index(0, v.size() - 1);
    for (int s = 0; s < std::min<int>(options.samples, int(v.size())); ++s) {
      const size_t k = options.samples >= int(v.size()) ? size_t(s) : index(pick);
      const T original = v[k];
      v[k] = original + T(options.step);
      value.assign_from_host(v);
      const double plus = loss();
      v[k] = original - T(options.step);
      value.assign_from_host(v);
      const double minus = loss();
      v[k] = original;
      value.assign_from_host(v);
      const double numeric = (plus - minus) / (2 * options.step), a = double(analytic[k]);
      entry.worst = std::max(entry.worst, std::abs(a - numeric) / std::max({std::abs(a), std::abs(numeric), options.floor}));
      ++entry.checked;
    }
    return entry;
  };
  GradcheckReport report;
  for (size_t i = 0; i < inputs.size(); ++i)
    report.entries.push_back(probe("input " + std::to_string(i), *inputs[i], dinputs[i].to_host()));
  for (auto& p : params)  // a frozen parameter has no gradient by design
    if (p.kind != nn::ParamKind::Frozen) report.entries.push_back(probe(p.name, *p.value, p.grad->to_host()));
  return report;
}

}  // namespace haze::verify
