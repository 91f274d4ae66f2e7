// libFuzzer harness: the IDX reader on arbitrary bytes, raw or gzip (the
// first two bytes decide, as for files). haze::Error is the only accepted
// way to refuse; what decodes must hold exactly prod(dims) bytes.
#include <cstdio>
#include <cstdlib>
#include <haze/io/idx.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const haze::io::IdxArray array = haze::io::decode_idx(bytes, "fuzz");
    uint64_t n = 1;
    for (int64_t d : array.dims) n *= uint64_t(d);
    if (array.dims.empty() || array.dims.size() > 4 || n != array.data.size()) {
      std::fprintf(stderr, "fuzz_idx: %zu dims and %zu bytes disagree\n", array.dims.size(), array.data.size());
      std::abort();
    }
  } catch (const haze::Error&) {
  }
  return 0;
}
