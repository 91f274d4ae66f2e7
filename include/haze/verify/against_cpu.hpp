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
// gradients); parameter gradients are compared by name.

#include <iomanip>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "haze/backend/cpu.hpp"
#include "haze/nn/module.hpp"
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
  const auto got = run(model);
  const auto expected = run(twin);
  // Each tensor is compared with atol = tolerance * scale, rtol = tolerance,
  // scale = its largest |reference| value but at least a tenth of the
  // largest over the whole report: gradients that are 0 in exact arithmetic
  // (attention's key bias, which softmax ignores) come back as rounding
  // noise on both sides and must be judged against the model's scale.
  double global = 0;
  for (const auto& e : expected) global = std::max(global, max_abs(e.second));
  for (const auto& p : twin_params) global = std::max(global, max_abs(*p.grad));
  const auto judge = [&](const auto& g, const auto& e) {
    const double scale = std::max(max_abs(e), 0.1 * global);
    return compare(g, e, tolerance * scale, tolerance);
  };
  AgainstCpuReport report;
  for (size_t i = 0; i < got.size(); ++i) report.rows.push_back({got[i].first, judge(got[i].second, expected[i].second)});
  for (size_t i = 0; i < params.size(); ++i)
    report.rows.push_back({"grad " + params[i].name, judge(*params[i].grad, *twin_params[i].grad)});
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
