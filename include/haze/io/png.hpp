#pragma once
// 8-bit images and PNG files: sample grids from a sampler, plots, and back
// again for tests and tools. Encoding happens in memory through libpng's I/O
// callbacks, so a file is written in one atomic step (write_file_atomically).
//
// libpng reports errors by longjmp. Each function that calls setjmp below
// creates no C++ object with a destructor, and the callbacks never let an
// exception cross libpng's C frames, so the jumps are well defined; their
// messages become haze::Error at the C++ entry points.

#include <png.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/io/atomic_file.hpp"

namespace haze::io {

// Row-major, channels interleaved: pixel (x, y) channel c is
// pixels[(y * width + x) * channels + c]. channels: 1 gray, 2 gray+alpha,
// 3 RGB, 4 RGBA.
struct Image {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;

  uint8_t& at(int x, int y, int c) {
    return pixels[(size_t(y) * size_t(width) + size_t(x)) * size_t(channels) + size_t(c)];
  }
  uint8_t at(int x, int y, int c) const {
    return pixels[(size_t(y) * size_t(width) + size_t(x)) * size_t(channels) + size_t(c)];
  }
};

namespace detail {

// Everything libpng's callbacks touch lives here, owned by the C++ caller and
// never local to the function that calls setjmp.
struct PngContext {
  std::vector<uint8_t> encoded;      // writing: the PNG bytes
  std::span<const std::byte> input;  // reading: the PNG bytes
  size_t position = 0;
  std::vector<uint8_t> pixels;  // reading: the decoded image
  std::vector<png_bytep> rows;
  png_uint_32 width = 0, height = 0;
  int channels = 0;
  char message[512] = "cannot create libpng's structures (out of memory)";
  char warning[200] = "";  // the last warning, which may say why an error follows
  char reason[256] = "";  // our own error, passed to png_error (which copies it into `message`)
};

// Bounds on what a crafted header can make decoding allocate. libpng's own
// row buffers grow with the width (at most 8 bytes a pixel, so 8 MiB at the
// widest); ancillary chunks (text, ICC profiles, possibly compressed) are
// capped in size and number; the decoded image is checked before its rows
// are allocated.
inline constexpr png_uint_32 png_max_side = 1u << 20;
inline constexpr size_t png_max_chunk_bytes = size_t{8} << 20;
inline constexpr png_uint_32 png_max_ancillary_chunks = 1000;
inline constexpr uint64_t png_max_decoded_bytes = uint64_t{1} << 28;  // 256 MiB, e.g. 8192x8192 RGBA

// libpng's errors can be terse ("Invalid IHDR data") after a warning that
// says why ("Image width exceeds user limit in IHDR"): report both.
inline void png_on_error(png_structp png, png_const_charp message) {
  auto* context = static_cast<PngContext*>(png_get_error_ptr(png));
  if (context->warning[0] != '\0')
    std::snprintf(context->message, sizeof context->message, "%s (libpng warned: %s)", message, context->warning);
  else
    std::snprintf(context->message, sizeof context->message, "%s", message);
  png_longjmp(png, 1);
}
inline void png_on_warning(png_structp png, png_const_charp message) {
  auto* context = static_cast<PngContext*>(png_get_error_ptr(png));
  std::snprintf(context->warning, sizeof context->warning, "%s", message);
}

inline void png_on_write(png_structp png, png_bytep data, size_t length) {
  auto* context = static_cast<PngContext*>(png_get_io_ptr(png));
  bool failed = false;
  try {
    context->encoded.insert(context->encoded.end(), data, data + length);
  } catch (...) {
    failed = true;
  }
  if (failed) png_error(png, "out of memory while encoding");  // outside the handler: longjmp leaves cleanly
}
inline void png_on_flush(png_structp) {}

inline void png_on_read(png_structp png, png_bytep data, size_t length) {
  auto* context = static_cast<PngContext*>(png_get_io_ptr(png));
  if (length > context->input.size() - context->position) png_error(png, "the file is truncated");
  std::memcpy(data, context->input.data() + context->position, length);
  context->position += length;
}

// Sizes the decode buffers; false, with context.reason set, when the image
// is over png_max_decoded_bytes or memory runs out (no exception into libpng).
inline bool png_allocate_rows(PngContext& context, size_t row_bytes) {
  const uint64_t total = uint64_t{row_bytes} * context.height;  // <= 2^22 * 2^20: no overflow
  if (total > png_max_decoded_bytes) {
    std::snprintf(context.reason, sizeof context.reason,
                  "a %lux%lu image with %d channels decodes to %llu bytes, over the limit of %llu bytes",
                  static_cast<unsigned long>(context.width), static_cast<unsigned long>(context.height),
                  context.channels, static_cast<unsigned long long>(total),
                  static_cast<unsigned long long>(png_max_decoded_bytes));
    return false;
  }
  try {
    context.pixels.resize(row_bytes * context.height);
    context.rows.resize(context.height);
  } catch (...) {
    std::snprintf(context.reason, sizeof context.reason, "out of memory while decoding");
    return false;
  }
  for (size_t y = 0; y < context.height; ++y) context.rows[y] = context.pixels.data() + y * row_bytes;
  return true;
}

// False on error, with libpng's message in context.message.
inline bool png_encode(const Image& image, PngContext& context) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &context, png_on_error, png_on_warning);
  if (png == nullptr) return false;
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {  // libpng jumped here from png_on_error
    png_destroy_write_struct(&png, &info);
    return false;
  }
  static constexpr int color_types[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                        PNG_COLOR_TYPE_RGB_ALPHA};
  png_set_write_fn(png, &context, png_on_write, png_on_flush);
  png_set_IHDR(png, info, png_uint_32(image.width), png_uint_32(image.height), 8, color_types[image.channels],
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_write_image(png, context.rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

// Decodes to 8 bits per channel (palettes become RGB, 16-bit is reduced).
inline bool png_decode(PngContext& context) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &context, png_on_error, png_on_warning);
  if (png == nullptr) return false;
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {  // libpng jumped here from png_on_error
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, &context, png_on_read);
  png_set_user_limits(png, png_max_side, png_max_side);
  png_set_chunk_malloc_max(png, png_max_chunk_bytes);
  png_set_chunk_cache_max(png, png_max_ancillary_chunks);
  png_read_info(png, info);
  png_set_expand(png);
  png_set_strip_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  context.width = png_get_image_width(png, info);
  context.height = png_get_image_height(png, info);
  context.channels = png_get_channels(png, info);
  if (!png_allocate_rows(context, png_get_rowbytes(png, info))) png_error(png, context.reason);
  png_read_image(png, context.rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

inline void check_image(const Image& image, std::string_view where) {
  HAZE_REQUIRE(image.width > 0 && image.height > 0, where, ": image size ", image.width, "x", image.height,
               " must be positive");
  HAZE_REQUIRE(image.channels >= 1 && image.channels <= 4, where, ": ", image.channels,
               " channels; expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)");
  const size_t expected = size_t(image.width) * size_t(image.height) * size_t(image.channels);
  HAZE_REQUIRE(image.pixels.size() == expected, where, ": a ", image.width, "x", image.height, "x", image.channels,
               " image needs ", expected, " bytes of pixels, got ", image.pixels.size());
}

}  // namespace detail

inline std::vector<std::byte> encode_png(const Image& image) {
  detail::check_image(image, "encode_png");
  detail::PngContext context;
  const size_t row_bytes = size_t(image.width) * size_t(image.channels);
  context.rows.resize(size_t(image.height));
  for (size_t y = 0; y < context.rows.size(); ++y)
    context.rows[y] = const_cast<png_bytep>(image.pixels.data() + y * row_bytes);  // libpng only reads them
  HAZE_REQUIRE(detail::png_encode(image, context), "encode_png: libpng failed: ", context.message);
  std::vector<std::byte> bytes(context.encoded.size());
  std::memcpy(bytes.data(), context.encoded.data(), bytes.size());
  return bytes;
}

inline Image decode_png(std::span<const std::byte> bytes, std::string_view source) {
  HAZE_REQUIRE(bytes.size() >= 8 && png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) == 0,
               "decode_png: '", source, "' is not a PNG file (no PNG signature)");
  detail::PngContext context;
  context.input = bytes;
  HAZE_REQUIRE(detail::png_decode(context), "decode_png: '", source, "': ", context.message);
  return Image{int(context.width), int(context.height), context.channels, std::move(context.pixels)};
}

inline void write_png(const std::filesystem::path& path, const Image& image) {
  detail::check_image(image, "write_png '" + path.string() + "'");
  write_file_atomically(path, encode_png(image));
}

inline Image read_png(const std::filesystem::path& path) { return decode_png(read_file(path), path.string()); }

// Maps a model-space value in [-1, 1] to a byte: -1 -> 0, 0 -> 128, 1 -> 255
// (round half away from zero of (v + 1) * 127.5; outside values clamp, NaN -> 0).
inline uint8_t to_byte(float value) {
  if (!(value == value)) return 0;
  const double scaled = std::clamp((double(value) + 1.0) * 127.5, 0.0, 255.0);
  return static_cast<uint8_t>(std::lround(scaled));
}

// Tiles n images (NCHW floats in [-1, 1], channels 1 or 3) row-major into a
// grid of `columns` columns (fewer if n is smaller), with `padding` black
// pixels around and between the tiles, like torchvision's make_grid.
inline Image image_grid(std::span<const float> images, int64_t n, int64_t channels, int64_t height, int64_t width,
                        int64_t columns, int padding = 2) {
  HAZE_REQUIRE(n >= 1 && height >= 1 && width >= 1 && columns >= 1 && padding >= 0, "image_grid: need n, height, ",
               "width, columns >= 1 and padding >= 0; got n=", n, " height=", height, " width=", width,
               " columns=", columns, " padding=", padding);
  HAZE_REQUIRE(channels == 1 || channels == 3, "image_grid: ", channels, " channels; expected 1 (gray) or 3 (RGB)");
  HAZE_REQUIRE(static_cast<int64_t>(images.size()) == n * channels * height * width, "image_grid: ", n, " images of ",
               channels, "x", height, "x", width, " need ", n * channels * height * width, " values, got ",
               images.size());
  const int64_t cols = std::min(columns, n);
  const int64_t rows = (n + cols - 1) / cols;
  const int64_t grid_width = cols * (width + padding) + padding;
  const int64_t grid_height = rows * (height + padding) + padding;
  HAZE_REQUIRE(grid_width <= (1 << 20) && grid_height <= (1 << 20) && grid_width * grid_height <= (int64_t(1) << 28),
               "image_grid: the grid would be ", grid_width, "x", grid_height, " pixels");

  Image grid{int(grid_width), int(grid_height), int(channels), {}};
  grid.pixels.assign(size_t(grid_width * grid_height * channels), 0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t left = padding + (i % cols) * (width + padding);
    const int64_t top = padding + (i / cols) * (height + padding);
    const float* image = images.data() + i * channels * height * width;  // (C, H, W)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t y = 0; y < height; ++y)
        for (int64_t x = 0; x < width; ++x)
          grid.at(int(left + x), int(top + y), int(c)) = to_byte(image[(c * height + y) * width + x]);
  }
  return grid;
}

}  // namespace haze::io
