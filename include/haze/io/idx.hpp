#pragma once
// IDX: the array format of MNIST and Fashion-MNIST (raw or gzip-compressed).
//
//   00 00 | type code | ndim | ndim big-endian u32 dimensions | payload
//
// Only unsigned bytes (type 0x08) are read: that is what the image and label
// files hold. The payload must have exactly prod(dims) bytes.

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/io/atomic_file.hpp"

namespace haze::io {

struct IdxArray {
  std::vector<int64_t> dims;  // e.g. {10000, 28, 28} for images, {10000} for labels
  std::vector<uint8_t> data;  // row-major, prod(dims) bytes
};

namespace detail {

inline bool is_gzip(std::span<const uint8_t> bytes) { return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b; }

inline std::span<const uint8_t> as_u8(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
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

inline constexpr size_t idx_max_header = 4 + 4 * 4;  // magic and four dimensions

struct IdxHeader {
  std::vector<int64_t> dims;
  size_t size = 0;       // 4 + 4 * ndim bytes
  uint64_t payload = 0;  // prod(dims) bytes
};

// The header at the start of `bytes`. While it is incomplete: nullopt if
// more bytes may follow (`complete` false), else an error. `where` starts
// each message ("read_idx: '<file>'").
inline std::optional<IdxHeader> parse_idx_header(std::span<const uint8_t> bytes, bool complete,
                                                 const std::string& where) {
  if (bytes.size() < 4) {
    HAZE_REQUIRE(!complete, where, ": ", bytes.size(), " bytes is too short for the IDX magic");
    return std::nullopt;
  }
  HAZE_REQUIRE(bytes[0] == 0 && bytes[1] == 0, where, ": not an IDX file: magic starts ", hex_byte(bytes[0]), " ",
               hex_byte(bytes[1]), ", expected 0x00 0x00");
  HAZE_REQUIRE(bytes[2] == 0x08, where, ": type code ", hex_byte(bytes[2]), " (", idx_type_name(bytes[2]),
               ") is not supported; only 0x08 (unsigned byte)");
  const int ndim = bytes[3];
  HAZE_REQUIRE(ndim >= 1 && ndim <= 4, where, ": ", ndim, " dimensions; expected 1 to 4");
  IdxHeader header;
  header.size = 4 + 4 * static_cast<size_t>(ndim);
  if (bytes.size() < header.size) {
    HAZE_REQUIRE(!complete, where, ": ", bytes.size(), " bytes is too short for the ", ndim,
                 " dimensions of the header (", header.size, " bytes)");
    return std::nullopt;
  }
  header.payload = 1;
  for (int i = 0; i < ndim; ++i) {
    const uint8_t* p = bytes.data() + 4 + 4 * i;
    const uint32_t d = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
    HAZE_REQUIRE(d > 0, where, ": dimension ", i, " is 0");
    // Four u32 dimensions can overflow u64.
    HAZE_REQUIRE(!__builtin_mul_overflow(header.payload, uint64_t(d), &header.payload), where,
                 ": the dimensions multiply to more than 2^64 payload bytes (dimension ", i, " is ", d, ")");
    header.dims.push_back(d);
  }
  return header;
}

// A raw file's header, given its first bytes and its size, which must be
// exactly the header's plus the payload the dimensions declare.
inline IdxHeader raw_idx_header(std::span<const uint8_t> prefix, uint64_t file_size, const std::string& where) {
  const IdxHeader header = *parse_idx_header(prefix.first(std::min<size_t>(prefix.size(), idx_max_header)), true, where);
  const uint64_t payload = file_size - std::min<uint64_t>(file_size, header.size);
  HAZE_REQUIRE(payload >= header.payload, where, ": truncated: the dimensions need ", header.payload,
               " payload bytes, got ", payload);
  HAZE_REQUIRE(payload == header.payload, where, ": ", payload - header.payload, " trailing bytes after the ",
               header.payload, "-byte payload");
  return header;
}

// Collects decompressed bytes; once the header is in, refuses any byte past
// the payload it declares, so a gzip bomb stops there instead of inflating
// to the end, and capacity never exceeds what the header implies.
class IdxInflateSink {
 public:
  explicit IdxInflateSink(const std::string& where) : where_(where) {}

  void operator()(std::span<const uint8_t> piece) {
    if (header_) make_room(piece.size());
    bytes_.insert(bytes_.end(), piece.begin(), piece.end());
    if (!header_ && (header_ = parse_idx_header(bytes_, false, where_))) make_room(0);
  }

  IdxArray finish() {
    if (!header_) header_ = parse_idx_header(bytes_, true, where_);
    const uint64_t payload = bytes_.size() - header_->size;
    HAZE_REQUIRE(payload == header_->payload, where_, ": truncated: the dimensions need ", header_->payload,
                 " payload bytes, got ", payload);
    bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(header_->size));
    return IdxArray{std::move(header_->dims), std::move(bytes_)};
  }

 private:
  void make_room(size_t more) {
    uint64_t limit = 0;  // header and payload; a payload near 2^64 saturates
    if (__builtin_add_overflow(uint64_t{header_->size}, header_->payload, &limit)) limit = UINT64_MAX;
    HAZE_REQUIRE(bytes_.size() <= limit && more <= limit - bytes_.size(), where_,
                 ": the gzip data inflates to more than the ", header_->payload,
                 " payload bytes its header declares (stopped after ", bytes_.size() + more, " decompressed bytes)");
    const size_t needed = bytes_.size() + more;
    if (needed > bytes_.capacity())
      bytes_.reserve(static_cast<size_t>(std::min<uint64_t>(limit, std::max(needed, 2 * bytes_.capacity()))));
  }

  const std::string& where_;
  std::vector<uint8_t> bytes_;  // header, then payload
  std::optional<IdxHeader> header_;
};

// Inflates gzip data (possibly several concatenated members, as gzip's own
// tools accept) piece by piece: `next_input()` returns the next compressed
// bytes (empty at the end), `sink` takes each piece of output and may throw
// to stop early.
template <class Input, class Sink>
void gunzip(Input&& next_input, Sink&& sink, const std::string& where) {
  z_stream stream{};
  HAZE_REQUIRE(inflateInit2(&stream, 15 + 16) == Z_OK, where, ": cannot start zlib");
  struct End {
    z_stream* s;
    ~End() { inflateEnd(s); }
  } end{&stream};
  std::vector<uint8_t> out(size_t{1} << 16);
  uint64_t produced = 0;
  bool input_ended = false;
  const auto refill = [&] {
    if (stream.avail_in > 0 || input_ended) return;
    const std::span<const uint8_t> in = next_input();
    input_ended = in.empty();
    stream.next_in = const_cast<Bytef*>(in.data());  // zlib only reads it
    stream.avail_in = static_cast<uInt>(in.size());
  };
  for (;;) {
    refill();
    stream.next_out = out.data();
    stream.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&stream, Z_NO_FLUSH);
    const size_t n = out.size() - stream.avail_out;
    produced += n;
    sink(std::span<const uint8_t>(out.data(), n));
    if (rc == Z_STREAM_END) {
      refill();
      if (stream.avail_in == 0) break;
      HAZE_REQUIRE(inflateReset(&stream) == Z_OK, where, ": cannot restart zlib");
      continue;  // another gzip member follows
    }
    if (rc == Z_BUF_ERROR && stream.avail_in == 0 && !input_ended) continue;  // wants more input
    // There is always output room, so "no progress" means the input ran out.
    HAZE_REQUIRE(!(rc == Z_BUF_ERROR && stream.avail_in == 0), where, ": the gzip stream is truncated after ", produced,
                 " decompressed bytes");
    HAZE_REQUIRE(rc == Z_OK, where, ": corrupt gzip data after ", produced,
                 " decompressed bytes: ", stream.msg ? stream.msg : "zlib error");
  }
}

template <class Input>
IdxArray inflate_idx(Input&& next_input, const std::string& where) {
  IdxInflateSink sink(where);
  gunzip(next_input, sink, where);
  return sink.finish();
}

}  // namespace detail

// An IDX array from bytes in memory (raw or gzip); `source` names them in errors.
inline IdxArray decode_idx(std::span<const std::byte> bytes, std::string_view source) {
  const std::string where = "decode_idx: '" + std::string(source) + "'";
  const std::span<const uint8_t> data = detail::as_u8(bytes);
  if (detail::is_gzip(data)) {
    std::span<const uint8_t> rest = data;
    const auto next_input = [&] {  // zlib counts input in 32 bits: at most 1 GiB at a time
      const std::span<const uint8_t> piece = rest.first(std::min<size_t>(rest.size(), size_t{1} << 30));
      rest = rest.subspan(piece.size());
      return piece;
    };
    return detail::inflate_idx(next_input, where);
  }
  const detail::IdxHeader header = detail::raw_idx_header(data, data.size(), where);
  return IdxArray{header.dims, std::vector<uint8_t>(data.begin() + static_cast<std::ptrdiff_t>(header.size), data.end())};
}

// Reads a raw file's header first and then exactly the payload it declares;
// a gzip file is inflated from the file in pieces, stopping at the payload's end.
inline IdxArray read_idx(const std::filesystem::path& path) {
  const std::string where = "read_idx: '" + path.string() + "'";
  const InputFile input(path, "read_idx");
  std::array<uint8_t, detail::idx_max_header> prefix{};
  const std::span<const uint8_t> first(prefix.data(), input.read_some(0, std::as_writable_bytes(std::span(prefix))));
  if (detail::is_gzip(first)) {
    std::vector<std::byte> chunk(size_t{1} << 16);
    uint64_t offset = 0;
    const auto next_input = [&] {
      const size_t n = input.read_some(offset, chunk);
      offset += n;
      return detail::as_u8(std::span(chunk).first(n));
    };
    return detail::inflate_idx(next_input, where);
  }
  const detail::IdxHeader header = detail::raw_idx_header(first, input.size(), where);
  IdxArray array{header.dims, std::vector<uint8_t>(static_cast<size_t>(header.payload))};
  input.read_at(header.size, std::as_writable_bytes(std::span(array.data)));
  return array;
}

}  // namespace haze::io
