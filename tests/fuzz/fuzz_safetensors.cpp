// libFuzzer harness: decode_safetensors on arbitrary bytes. A decoded file
// must survive encode -> decode unchanged, and every floating-point tensor
// in it must widen (to_real); haze::Error is the only accepted
// way to refuse (any other exception, a crash or a sanitizer report is a finding).
#include <cstdio>
#include <cstdlib>
#include <haze/io/safetensors.hpp>

namespace {

bool same(const haze::io::Safetensors& a, const haze::io::Safetensors& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    const haze::io::TensorRecord &x = a.tensors[i], &y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.data != y.data) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  haze::io::Safetensors decoded;
  try {
    decoded = haze::io::decode_safetensors(bytes, "fuzz");
  } catch (const haze::Error&) {
    return 0;
  }
  // What decodes must encode (no haze::Error allowed here) and come back the same.
  const haze::io::Safetensors again = haze::io::decode_safetensors(haze::io::encode_safetensors(decoded), "again");
  if (!same(decoded, again)) {
    std::fprintf(stderr, "fuzz_safetensors: the encode/decode round trip changed the file\n");
    std::abort();
  }
  using haze::io::DType;
  for (const haze::io::TensorRecord& t : decoded.tensors)
    if (t.dtype == DType::F16 || t.dtype == DType::BF16 || t.dtype == DType::F32 || t.dtype == DType::F64) {
      if (t.to_real<double>().size() != size_t(t.numel())) std::abort();
    }
  return 0;
}
