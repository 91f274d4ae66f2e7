#pragma once
// IDX: the array format of MNIST and Fashion-MNIST (raw or gzip-compressed).
//
//   00 00 | type code | ndim | ndim big-endian u32 dimensions | payload
//
// Only unsigned bytes (type 0x08) are read: that is what the image and label
// files hold. The payload must have exactly prod(dims) bytes.

#include <zlib.h>

#include <algorithm>
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

struct IdxArray {
  std::vector<int64_t> dims;  // e.g. {10000, 28, 28} for images, {10000} for labels
  std::vector<uint8_t> data;  // row-major, prod(dims) bytes
};

namespace detail {

inline bool is_gzip(std::span<const std::byte> bytes) {
  return bytes.size() >= 2 && bytes[0] == std::byte{0x1f} && bytes[1] == std::byte{0x8b};
}

// Inflates a whole gzip file (possibly several concatenated members, as
// gzip's own tools accept) in memory.
inline std::vector<uint8_t> gunzip(std::span<const std::byte> compressed, const std::filesystem::path& path) {
  HAZE_REQUIRE(compressed.size() <= UINT32_MAX, "read_idx: '", path.string(), "': compressed file too large");
  z_stream stream{};
  HAZE_REQUIRE(inflateInit2(&stream, 15 + 16) == Z_OK, "read_idx: '", path.string(), "': cannot start zlib");
  struct End {
    z_stream* s;
    ~End() { inflateEnd(s); }
  } end{&stream};
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(compressed.data()));
  stream.avail_in = static_cast<uInt>(compressed.size());

  std::vector<uint8_t> out;
  size_t produced = 0;
  for (;;) {
    if (produced == out.size()) out.resize(std::max<size_t>(2 * out.size(), size_t{1} << 16));
    stream.next_out = out.data() + produced;
    stream.avail_out = static_cast<uInt>(std::min<size_t>(out.size() - produced, UINT32_MAX));
    const int rc = inflate(&stream, Z_NO_FLUSH);
    produced = static_cast<size_t>(stream.next_out - out.data());
    if (rc == Z_STREAM_END) {
      if (stream.avail_in == 0) break;
      HAZE_REQUIRE(inflateReset(&stream) == Z_OK, "read_idx: '", path.string(), "': cannot restart zlib");
      continue;  // another gzip member follows
    }
    // There is always output room, so "no progress" means the input ran out.
    HAZE_REQUIRE(!(rc == Z_BUF_ERROR && stream.avail_in == 0), "read_idx: '", path.string(),
                 "': the gzip stream is truncated after ", produced, " decompressed bytes");
    HAZE_REQUIRE(rc == Z_OK, "read_idx: '", path.string(), "': corrupt gzip data after ", produced,
                 " decompressed bytes: ", stream.msg ? stream.msg : "zlib error");
  }
  out.resize(produced);
  return out;
}

inline const char* idx_type_name(uint8_t code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "short";
    case 0x0C: return "int";
    case 0x0D: return "float";
    case 0x0E: return "double";
    default: return "unknown";
  }
}

inline std::string hex_byte(uint8_t b) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%02x", b);
  return text;
}

}  // namespace detail

inline IdxArray read_idx(const std::filesystem::path& path) {
  const std::vector<std::byte> file = read_file(path);
  std::vector<uint8_t> bytes;
  if (detail::is_gzip(file)) {
    bytes = detail::gunzip(file, path);
  } else {
    bytes.resize(file.size());
    std::memcpy(bytes.data(), file.data(), file.size());
  }

  const std::string name = path.string();
  HAZE_REQUIRE(bytes.size() >= 4, "read_idx: '", name, "': ", bytes.size(), " bytes is too short for the IDX magic");
  HAZE_REQUIRE(bytes[0] == 0 && bytes[1] == 0, "read_idx: '", name, "': not an IDX file: magic starts ",
               detail::hex_byte(bytes[0]), " ", detail::hex_byte(bytes[1]), ", expected 0x00 0x00");
  HAZE_REQUIRE(bytes[2] == 0x08, "read_idx: '", name, "': type code ", detail::hex_byte(bytes[2]), " (",
               detail::idx_type_name(bytes[2]), ") is not supported; only 0x08 (unsigned byte)");
  const int ndim = bytes[3];
  HAZE_REQUIRE(ndim >= 1 && ndim <= 4, "read_idx: '", name, "': ", ndim, " dimensions; expected 1 to 4");
  const size_t header = 4 + 4 * static_cast<size_t>(ndim);
  HAZE_REQUIRE(bytes.size() >= header, "read_idx: '", name, "': ", bytes.size(), " bytes is too short for the ", ndim,
               " dimensions of the header (", header, " bytes)");

  IdxArray array;
  uint64_t expected = 1;
  for (int i = 0; i < ndim; ++i) {
    const uint8_t* p = bytes.data() + 4 + 4 * i;
    const uint32_t d = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
    HAZE_REQUIRE(d > 0, "read_idx: '", name, "': dimension ", i, " is 0");
    // Four u32 dimensions can overflow u64: compare with the file as we go.
    HAZE_REQUIRE(!__builtin_mul_overflow(expected, uint64_t(d), &expected) && expected <= bytes.size(), "read_idx: '",
                 name, "': dimensions need more bytes than the file holds (", bytes.size() - header, " payload bytes)");
    array.dims.push_back(d);
  }
  const size_t payload = bytes.size() - header;
  HAZE_REQUIRE(payload >= expected, "read_idx: '", name, "': truncated: the dimensions need ", expected,
               " payload bytes, got ", payload);
  HAZE_REQUIRE(payload == expected, "read_idx: '", name, "': ", payload - expected, " trailing bytes after the ",
               expected, "-byte payload");
  array.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return array;
}

}  // namespace haze::io
