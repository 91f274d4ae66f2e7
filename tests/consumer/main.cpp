// Uses haze through its umbrella header; exits non-zero on a wrong result.
#include <haze/haze.hpp>

#include <cstdio>

int main() {
  using namespace haze;
#if defined(THRUST_DEVICE_SYSTEM)
  using B = backend::Device;
#else
  using B = backend::Cpu;
#endif
  auto a = Tensor<float, B>::full({2, 3}, 2.0f);
  auto b = Tensor<float, B>::full({3, 4}, 0.5f);
  Tensor<float, B> c({2, 4});
  ops::matmul(a, b, c);
  const double total = ops::sum(c);  // 8 entries of 3 * 2 * 0.5
  std::printf("consumer on %s: sum = %g\n", B::name.data(), total);
  return total == 24.0 ? 0 : 1;
}
