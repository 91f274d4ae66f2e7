// Prints an FNV-1a digest of the bits of 2^20 double normals from randn.
// Built twice, with the compiler's default flags and with FMA enabled
// (-mfma): the test randn_bits_independent_of_fma compares the two outputs,
// showing that exact_math.hpp's guard against FMA contraction works.
#include <haze/backend/cpu.hpp>
#include <haze/ops/random.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>

int main() {
  haze::Tensor<double, haze::backend::Cpu> t({1 << 20});
  haze::Generator gen{3};
  haze::randn(t, gen);
  uint64_t digest = 1469598103934665603ull;
  for (double x : t.to_host()) {
    uint64_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    digest = (digest ^ bits) * 1099511628211ull;
  }
  std::printf("%016llx\n", static_cast<unsigned long long>(digest));
}
