// Runs the same ops with the same inputs on backend::Cpu (the reference) and
// backend::Device, and prints a table of the differences: what a user checks
// first when a device kernel is suspect.
//
//   parity_report [n]      n = elements per vector op (default 1 << 20)
#include <haze/haze.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

using haze::backend::Cpu;
using haze::backend::Device;

template <class T, class B>
using Tensor = haze::Tensor<T, B>;

struct Row {
  std::string op;
  std::string dtype;
  haze::verify::Comparison result;
  double cpu_ms, device_ms;
};

template <class F>
double time_ms(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

struct Gelu {  // a longer map: tanh-approximated GELU
  template <class T>
  HAZE_HD T operator()(T x) const {
    return T(0.5) * x * (T(1) + std::tanh(T(0.7978845608028654) * (x + T(0.044715) * x * x * x)));
  }
};

template <class T>
void report(int64_t n, std::vector<Row>& rows) {
  const std::string dtype(haze::dtype_name<T>());
  constexpr double eps = std::numeric_limits<T>::epsilon();
  haze::Generator gen{7};
  auto ca = Tensor<T, Cpu>({n}), cb = Tensor<T, Cpu>({n});
  haze::randn(ca, gen);
  haze::randn(cb, gen);
  const auto da = ca.template to<Device>(), db = cb.template to<Device>();

  {  // randn itself
    haze::Generator g1{42}, g2{42};
    auto c = Tensor<T, Cpu>({n});
    auto d = Tensor<T, Device>({n});
    const double tc = time_ms([&] { haze::randn(c, g1); });
    const double td = time_ms([&] { haze::randn(d, g2); });
    rows.push_back({"randn", dtype, haze::verify::compare(d, c, 0, 0), tc, td});
  }
  {
    auto c = Tensor<T, Cpu>({n});
    auto d = Tensor<T, Device>({n});
    const double tc = time_ms([&] { haze::ops::add(ca, cb, c); });
    const double td = time_ms([&] { haze::ops::add(da, db, d); });
    rows.push_back({"add", dtype, haze::verify::compare(d, c, 0, 0), tc, td});
  }
  {
    auto c = Tensor<T, Cpu>({n});
    auto d = Tensor<T, Device>({n});
    const double tc = time_ms([&] { haze::ops::map(c, Gelu{}, ca); });
    const double td = time_ms([&] { haze::ops::map(d, Gelu{}, da); });
    rows.push_back({"map(gelu)", dtype, haze::verify::compare(d, c, 4 * eps, 4 * eps), tc, td});
  }
  {
    const int64_t groups = 32;  // GroupNorm-like: 32 long rows
    auto c = Tensor<T, Cpu>({groups});
    auto d = Tensor<T, Device>({groups});
    const double tc = time_ms([&] { haze::ops::sum_axes(ca, 1, groups, n / groups, c); });
    const double td = time_ms([&] { haze::ops::sum_axes(da, 1, groups, n / groups, d); });
    // Both accumulate in double in different orders: each is within
    // count 2^-53 sum|x| of the exact sum; then one rounding to T.
    auto abs_sums = Tensor<T, Cpu>({groups});
    haze::ops::sum_axes(ca, 1, groups, n / groups, abs_sums, haze::ops::Abs{});
    double largest = 0;
    for (T v : abs_sums.to_host()) largest = std::max(largest, double(v));
    const double atol = 2 * double(n / groups) * 0x1p-53 * largest;
    rows.push_back({"sum_axes", dtype, haze::verify::compare(d, c, atol, eps), tc, td});
  }
  {
    const int64_t m = 256, k = 288, cols = 1024;  // a 3x3 conv's GEMM, 32 -> 256 channels on 32x32
    auto cw = Tensor<T, Cpu>({m, k}), ccols = Tensor<T, Cpu>({k, cols});
    haze::randn(cw, gen);
    haze::randn(ccols, gen);
    const auto dw = cw.template to<Device>(), dcols = ccols.template to<Device>();
    auto c = Tensor<T, Cpu>({m, cols});
    auto d = Tensor<T, Device>({m, cols});
    const double tc = time_ms([&] { haze::ops::matmul(cw, ccols, c); });
    const double td = time_ms([&] { haze::ops::matmul(dw, dcols, d); });
    // Normal inputs: |A||B| per entry is about K * 2/pi; bound as in the tests.
    rows.push_back({"matmul 256x288x1024", dtype, haze::verify::compare(d, c, 2.0 * (k + 2) * eps * k, 0), tc, td});
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : (int64_t(1) << 20);
  if (n < 32 || n % 32 != 0) {
    std::fprintf(stderr, "usage: parity_report [n]  (n: a positive multiple of 32, default 1048576)\n");
    return 2;
  }
  std::vector<Row> rows;
  try {
    report<float>(n, rows);
    report<double>(n, rows);
  } catch (const haze::Error& e) {
    std::fprintf(stderr, "parity_report: %s\n", e.what());
    return 1;
  }
  std::printf("haze parity report: %s against %s (reference), n = %lld\n\n", Device::name.data(), Cpu::name.data(),
              static_cast<long long>(n));
  std::printf("%-22s %-8s %-9s %12s %12s %10s %10s\n", "op", "dtype", "status", "max abs", "max rel", "cpu ms",
              "device ms");
  bool all_ok = true;
  for (const Row& r : rows) {
    all_ok = all_ok && r.result.ok();
    std::printf("%-22s %-8s %-9s %12.3e %12.3e %10.2f %10.2f\n", r.op.c_str(), r.dtype.c_str(),
                r.result.ok() ? "ok" : "MISMATCH", r.result.max_abs, r.result.max_rel, r.cpu_ms, r.device_ms);
  }
  std::printf("\n%s\n", all_ok ? "all ops agree within tolerance" : "SOME OPS DISAGREE");
  return all_ok ? 0 : 1;
}
