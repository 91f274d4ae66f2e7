#pragma once
// against_cpu: run a model on its backend and a Cpu twin with the same
// weights and inputs, forward and backward, and report, layer by layer, how
// far apart they are: the first thing to look at when a device kernel
// misbehaves.
//
//   auto report = haze::verify::against_cpu(unet_on_device, x, timesteps, labels);
//   std::cout << report;   // a table: name, max abs, max rel, ok
//
// The general form takes both models and a `run(model)` that performs
// forward + backward and returns the tensors to compare (output, input
// gradients). What the models record in an nn::Trace while `run` runs
// (the UNet: every block's output in forward order, every block's input
// gradient in backward order) is compared entry by entry, so a wrong
// kernel shows first at the block that has it; parameter gradients are
// compared by name.

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "haze/backend/cpu.hpp"
#include "haze/nn/module.hpp"
#include "haze/nn/trace.hpp"
#include "haze/nn/unet.hpp"
#include "haze/ops/random.hpp"
#include "haze/verify/compare.hpp"

namespace haze::verify {

struct LayerDifference {
  std::string name;
  Comparison comparison;
};

struct AgainstCpuReport {
  std::vector<LayerDifference> rows;

  bool ok() const {
    for (const auto& r : rows)
      if (!r.comparison.ok()) return false;
    return true;
  }
  friend std::ostream& operator<<(std::ostream& os, const AgainstCpuReport& r) {
    size_t width = 4;
    for (const auto& row : r.rows) width = std::max(width, row.name.size());
    os << std::left << std::setw(int(width)) << "name" << "  " << std::right << std::setw(11) << "max abs" << "  "
       << std::setw(11) << "max rel" << "  status\n";
    for (const auto& row : r.rows) {
      os << std::left << std::setw(int(width)) << row.name << "  " << std::right << std::scientific
         << std::setprecision(3) << std::setw(11) << row.comparison.max_abs << "  " << std::setw(11)
         << row.comparison.max_rel << "  " << (row.comparison.ok() ? "ok" : "MISMATCH") << "\n";
    }
    os << std::defaultfloat;
    return os;
  }
};

// Largest |value| of a tensor.
template <class T, class B>
double max_abs(const Tensor<T, B>& t) {
  double m = 0;
  for (T v : t.to_host()) m = std::max(m, std::abs(double(v)));
  return m;
}

namespace detail {
// The module a parameter belongs to: its name up to the last dot.
inline std::string module_of(const std::string& parameter) {
  const size_t dot = parameter.rfind('.');
  return dot == std::string::npos ? std::string() : parameter.substr(0, dot);
}

inline double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::abs(x));
  return m;
}
}  // namespace detail

// Tolerances. A trace entry (a module's output or input gradient) or a
// returned tensor passes with atol = tolerance * s, rtol = tolerance, s its
// own largest |reference| value: two correct backends differ by roundings
// that scale with the tensor itself, and the GroupNorms in every block keep
// an upstream difference relative as it travels, so no entry borrows a
// larger tensor's scale. A parameter gradient's s is also at least a tenth
// of the largest gradient in its own module: some gradients are 0 in exact
// arithmetic (attention's key bias, which softmax ignores) and come back
// as rounding noise of the module's scale on both sides.
template <class DeviceModel, class CpuModel, class Run>
AgainstCpuReport against_cpu(DeviceModel& model, CpuModel& twin, Run run, double tolerance) {
  auto params = nn::parameters_of(model);
  auto twin_params = nn::parameters_of(twin);
  HAZE_REQUIRE(params.size() == twin_params.size(), "verify::against_cpu: the models have ", params.size(), " and ",
               twin_params.size(), " parameters");
  for (size_t i = 0; i < params.size(); ++i) {
    HAZE_REQUIRE(params[i].name == twin_params[i].name, "verify::against_cpu: parameter ", i, " is ",
                 params[i].name, " on one side and ", twin_params[i].name, " on the other");
    twin_params[i].value->assign_from_host(params[i].value->to_host());
    ops::fill(*params[i].grad, typename DeviceModel::value_type(0));
    ops::fill(*twin_params[i].grad, typename DeviceModel::value_type(0));
  }
  nn::Trace trace, twin_trace;
  const auto got = [&] {
    const nn::TraceScope scope(trace);
    return run(model);
  }();
  const auto expected = [&] {
    const nn::TraceScope scope(twin_trace);
    return run(twin);
  }();
  HAZE_REQUIRE(trace.outputs.size() == twin_trace.outputs.size() &&
                   trace.input_grads.size() == twin_trace.input_grads.size(),
               "verify::against_cpu: the models recorded ", trace.outputs.size(), " and ", twin_trace.outputs.size(),
               " module outputs, ", trace.input_grads.size(), " and ", twin_trace.input_grads.size(),
               " input gradients");

  AgainstCpuReport report;
  const auto add = [&](const std::string& name, const std::vector<double>& g, const std::vector<double>& e,
                       double scale) {
    report.rows.push_back({name, compare<double>(g, e, tolerance * scale, tolerance)});
  };
  const auto add_entries = [&](const char* what, const std::vector<nn::TraceEntry>& g,
                               const std::vector<nn::TraceEntry>& e) {
    for (size_t i = 0; i < g.size(); ++i) {
      HAZE_REQUIRE(g[i].name == e[i].name, "verify::against_cpu: entry ", i, " is ", g[i].name,
                   " on one side and ", e[i].name, " on the other");
      add(std::string(what) + g[i].name, g[i].values, e[i].values, detail::max_abs(e[i].values));
    }
  };
  add_entries("output ", trace.outputs, twin_trace.outputs);
  add_entries("input grad ", trace.input_grads, twin_trace.input_grads);
  const auto host = [](const auto& t) {
    const auto v = t.to_host();
    return std::vector<double>(v.begin(), v.end());
  };
  for (size_t i = 0; i < got.size(); ++i) {
    const auto e = host(expected[i].second);
    add(got[i].first, host(got[i].second), e, detail::max_abs(e));
  }
  std::map<std::string, double> module_scale;
  for (const auto& p : twin_params) {
    double& m = module_scale[detail::module_of(p.name)];
    m = std::max(m, max_abs(*p.grad));
  }
  for (size_t i = 0; i < params.size(); ++i) {
    const auto e = host(*twin_params[i].grad);
    add("grad " + params[i].name, host(*params[i].grad), e,
        std::max(detail::max_abs(e), 0.1 * module_scale[detail::module_of(params[i].name)]));
  }
  return report;
}

// The UNet: forward on (x, timesteps, labels), backward of a Philox dy.
template <Real T, Backend B>
AgainstCpuReport against_cpu(nn::UNet<T, B>& model, const Tensor<T, B>& x, std::span<const double> timesteps,
                             std::span<const int64_t> labels = {}, double tolerance = 1e-4, uint64_t seed = 1) {
  nn::UNet<T, backend::Cpu> twin(model.config());
  const auto run = [&](auto& m) {
    using M = std::remove_reference_t<decltype(m)>;
    using MB = typename M::backend_type;
    const Tensor<T, MB> input = x.template to<MB>();
    Tensor<T, MB> y = m.forward(input, timesteps, labels);
    Tensor<T, MB> dy(y.shape());
    Generator gen{seed};
    randn(dy, gen);
    Tensor<T, MB> dx = m.backward(dy);
    std::vector<std::pair<std::string, Tensor<T, MB>>> out;
    out.emplace_back("output", std::move(y));
    out.emplace_back("grad input", std::move(dx));
    return out;
  };
  return against_cpu(model, twin, run, tolerance);
}

}  // namespace haze::verify
