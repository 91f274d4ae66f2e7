#pragma once
// Reads the golden files written by tests/golden/nn_golden.py: one tensor a
// line, "full <name> <rank> <dims..> <values..>" or, for big tensors,
// "summary <name> <rank> <dims..> <sum> <sum of |v|> <16 values at (j * 7919) mod numel>".

#include <haze/core/tensor.hpp>
#include <haze/verify/compare.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace haze::test {

struct GoldenTensor {
  bool summary = false;
  std::vector<int64_t> dims;
  std::vector<double> values;  // all values, or sum, sum_abs, 16 samples

  Shape shape() const {
    switch (dims.size()) {
      case 1: return Shape{dims[0]};
      case 2: return Shape{dims[0], dims[1]};
      case 3: return Shape{dims[0], dims[1], dims[2]};
      default: return Shape{dims[0], dims[1], dims[2], dims[3]};
    }
  }
};

class GoldenFile {
 public:
  // tests/golden/<folder>/<case_name>.txt
  explicit GoldenFile(const std::string& case_name, const std::string& folder = "nn") {
    const std::string path = std::string(HAZE_GOLDEN_DIR) + "/" + folder + "/" + case_name + ".txt";
    INFO("golden file " << path);
    std::ifstream file(path);
    REQUIRE(file.good());
    std::string line;
    while (std::getline(file, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream in(line);
      std::string kind, name;
      int rank;
      in >> kind >> name >> rank;
      GoldenTensor t;
      t.summary = kind == "summary";
      t.dims.resize(rank);
      for (auto& d : t.dims) in >> d;
      for (std::string v; in >> v;) t.values.push_back(v == "inf" ? INFINITY : std::stod(v));
      tensors_[name] = std::move(t);
    }
  }

  const GoldenTensor& at(const std::string& name) const {
    const auto it = tensors_.find(name);
    INFO("golden tensor " << name);
    REQUIRE(it != tensors_.end());
    return it->second;
  }

  template <class T, class B>
  Tensor<T, B> tensor(const std::string& name) const {
    const GoldenTensor& g = at(name);
    REQUIRE_FALSE(g.summary);
    const std::vector<T> v(g.values.begin(), g.values.end());
    return Tensor<T, B>::from_host(g.shape(), v);
  }

  std::vector<double> values(const std::string& name) const { return at(name).values; }

  // got against the golden tensor: |got - ref| <= tol (|ref| + scale), with
  // scale = max(max |ref|, 0.1): relative to each element and to the
  // tensor's size (sums of products lose precision relative to the
  // operands, not the result). The 0.1 floor is for gradients that are 0 in
  // exact arithmetic, like attention's key bias (softmax ignores a constant
  // per row): both sides return rounding noise there. Summaries compare the
  // sum, the sum of |v| and the samples.
  template <class T, class B>
  void check(const std::string& name, const Tensor<T, B>& got, double tol) const {
    const GoldenTensor& g = at(name);
    INFO("comparing " << name << " " << got.shape());
    REQUIRE(got.shape() == g.shape());
    const std::vector<T> h = got.to_host();
    if (!g.summary) {
      double scale = 0.1;
      for (double v : g.values) scale = std::max(scale, std::abs(v));
      const auto c = verify::compare<double>(std::vector<double>(h.begin(), h.end()), g.values, tol * scale, tol);
      std::ostringstream report;
      report << c;
      INFO(report.str());
      CHECK(c.ok());
      return;
    }
    double sum = 0, sum_abs = 0, scale = 0.1;
    for (T v : h) sum += double(v), sum_abs += std::abs(double(v)), scale = std::max(scale, std::abs(double(v)));
    const double n = double(h.size());
    // The sums themselves carry up to n 2^-53 relative rounding (Python used fsum).
    const double sum_tol = std::max(tol, n * 0x1p-53);
    CHECK(std::abs(sum - g.values[0]) <= sum_tol * (g.values[1] + n * scale));
    CHECK(std::abs(sum_abs - g.values[1]) <= sum_tol * (g.values[1] + n * scale));
    for (int j = 0; j < 16; ++j) {
      const size_t k = (size_t(j) * 7919) % h.size();
      CAPTURE(j, k);
      CHECK(std::abs(double(h[k]) - g.values[2 + j]) <= tol * (std::abs(g.values[2 + j]) + scale));
    }
  }

 private:
  std::map<std::string, GoldenTensor> tensors_;
};

}  // namespace haze::test
