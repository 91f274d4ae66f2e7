// libFuzzer harness: decode_png on arbitrary bytes. haze::Error is the only
// accepted way to refuse; a decoded image must be consistent with its size.
#include <cstdio>
#include <cstdlib>
#include <haze/io/png.hpp>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const haze::io::Image image = haze::io::decode_png(bytes, "fuzz");
    if (image.channels < 1 || image.channels > 4 ||
        image.pixels.size() != size_t(image.width) * size_t(image.height) * size_t(image.channels)) {
      std::fprintf(stderr, "fuzz_png: a %dx%dx%d image with %zu bytes\n", image.width, image.height, image.channels,
                   image.pixels.size());
      std::abort();
    }
  } catch (const haze::Error&) {
  }
  return 0;
}
