#pragma once
// safetensors: the checkpoint format of Hugging Face's `safetensors` package,
// so haze checkpoints load in Python and diffusers-style weights load here.
//
//   [u64 little-endian N][N bytes of JSON header, space padded][data buffer]
//
// The header maps each tensor name to {"dtype", "shape", "data_offsets":
// [begin, end)} (offsets relative to the buffer), plus an optional
// "__metadata__" object of strings. Decoding trusts nothing: every length,
// offset and type is checked, the tensors must tile the buffer exactly, and
// each error names the source, the tensor and the offending numbers.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/io/atomic_file.hpp"

namespace haze::io {

static_assert(std::endian::native == std::endian::little,
              "haze::io copies safetensors data (little-endian) in place: a big-endian host needs byte swaps here");

// F16 and BF16 are read (diffusers stores half-precision models so) and
// widened by TensorRecord::to_real; haze computes in float or double.
enum class DType { F32, F64, I64, I32, U8, F16, BF16 };

constexpr std::string_view dtype_name(DType dtype) {
  switch (dtype) {
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
  }
  return "?";
}

constexpr size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::F32: return 4;
    case DType::F64: return 8;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
    case DType::F16: return 2;
    case DType::BF16: return 2;
  }
  return 0;
}

constexpr std::optional<DType> dtype_from_name(std::string_view name) {
  for (DType d : {DType::F32, DType::F64, DType::I64, DType::I32, DType::U8, DType::F16, DType::BF16})
    if (dtype_name(d) == name) return d;
  return std::nullopt;
}

// The safetensors dtype that stores a C++ element type.
template <class T>
struct dtype_of;
template <>
struct dtype_of<float> {
  static constexpr DType value = DType::F32;
};
template <>
struct dtype_of<double> {
  static constexpr DType value = DType::F64;
};
template <>
struct dtype_of<int64_t> {
  static constexpr DType value = DType::I64;
};
template <>
struct dtype_of<int32_t> {
  static constexpr DType value = DType::I32;
};
template <>
struct dtype_of<uint8_t> {
  static constexpr DType value = DType::U8;
};

template <class T>
concept StorableElement = requires {
  dtype_of<T>::value;
};

namespace detail {

inline std::string shape_text(std::span<const int64_t> shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

// Element count of `shape`, or nullopt when a dimension is negative or the
// product overflows int64 (a crafted header must not wrap around).
inline std::optional<int64_t> checked_numel(std::span<const int64_t> shape) {
  int64_t n = 1;  // a rank-0 tensor is a scalar
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return std::nullopt;
  }
  return n;
}

// IEEE binary16 and bfloat16 bits as a float: both widen exactly.
inline float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h >> 15) << 31, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN
  if (exponent != 0) return std::bit_cast<float>(sign | ((exponent + 112) << 23) | (mantissa << 13));
  // zero or subnormal: mantissa 2^-24 exactly
  const float magnitude = float(mantissa) * 0x1p-24f;
  return sign ? -magnitude : magnitude;
}
inline float bfloat16_to_float(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }

}  // namespace detail

// One named tensor as stored in the file: dtype, shape and raw little-endian bytes.
struct TensorRecord {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;   // row-major; {} is a scalar
  std::vector<std::byte> data;  // numel() * dtype_size(dtype) bytes

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }

  template <StorableElement T>
  static TensorRecord from(std::string name, std::vector<int64_t> shape, std::span<const T> values) {
    const std::optional<int64_t> n = detail::checked_numel(shape);
    HAZE_REQUIRE(n.has_value(), "TensorRecord::from: tensor '", name, "': invalid shape ", detail::shape_text(shape),
                 " (negative or overflowing dimensions)");
    HAZE_REQUIRE(*n == static_cast<int64_t>(values.size()), "TensorRecord::from: tensor '", name, "': shape ",
                 detail::shape_text(shape), " holds ", *n, " elements but ", values.size(), " values were given");
    TensorRecord record{std::move(name), dtype_of<T>::value, std::move(shape), {}};
    record.data.resize(values.size_bytes());
    if (!values.empty()) std::memcpy(record.data.data(), values.data(), values.size_bytes());
    return record;
  }
  template <StorableElement T>
  static TensorRecord from(std::string name, std::vector<int64_t> shape, const std::vector<T>& values) {
    return from<T>(std::move(name), std::move(shape), std::span<const T>(values));
  }

  // The values as T; T must match the stored dtype exactly (no conversions).
  template <StorableElement T>
  std::vector<T> as() const {
    HAZE_REQUIRE(dtype_of<T>::value == dtype, "TensorRecord::as: tensor '", name, "' holds ", dtype_name(dtype),
                 ", not ", dtype_name(dtype_of<T>::value));
    const std::optional<int64_t> n = detail::checked_numel(shape);
    HAZE_REQUIRE(n && static_cast<size_t>(*n) * sizeof(T) == data.size(), "TensorRecord::as: tensor '", name,
                 "': shape ", detail::shape_text(shape), " does not match its ", data.size(), " bytes of data");
    std::vector<T> values(static_cast<size_t>(*n));
    if (!values.empty()) std::memcpy(values.data(), data.data(), data.size());
    return values;
  }

  // The values of a floating-point tensor (F16, BF16, F32, F64) as T:
  // widened exactly, or rounded to nearest where T is narrower (F64 to float).
  template <class T>
    requires std::is_floating_point_v<T>
  std::vector<T> to_real() const {
    const std::optional<int64_t> n = detail::checked_numel(shape);
    HAZE_REQUIRE(n && static_cast<size_t>(*n) * dtype_size(dtype) == data.size(), "TensorRecord::to_real: tensor '",
                 name, "': shape ", detail::shape_text(shape), " does not match its ", data.size(), " bytes of data");
    std::vector<T> values(static_cast<size_t>(*n));
    const auto convert = [&]<class S>(S, auto widen) {
      for (size_t i = 0; i < values.size(); ++i) {
        S bits;
        std::memcpy(&bits, data.data() + i * sizeof(S), sizeof(S));
        values[i] = static_cast<T>(widen(bits));
      }
    };
    const auto same = [](auto v) { return v; };
    switch (dtype) {
      case DType::F32: convert(float{}, same); break;
      case DType::F64: convert(double{}, same); break;
      case DType::F16: convert(uint16_t{}, detail::half_to_float); break;
      case DType::BF16: convert(uint16_t{}, detail::bfloat16_to_float); break;
      default:
        HAZE_FAIL("TensorRecord::to_real: tensor '", name, "' holds ", dtype_name(dtype),
                  ", not a floating-point type (F16, BF16, F32, F64)");
    }
    return values;
  }
};

// A whole file: its tensors in order, its metadata, and where it came from.
struct Safetensors {
  std::map<std::string, std::string> metadata;
  std::vector<TensorRecord> tensors;  // in insertion (header) order
  std::string source = "<memory>";    // file name, for error messages

  void add(TensorRecord record) {
    HAZE_REQUIRE(record.name != "__metadata__", "Safetensors::add: '__metadata__' is reserved, not a tensor name (",
                 source, ")");
    HAZE_REQUIRE(find(record.name) == nullptr, "Safetensors::add: a tensor named '", record.name, "' is already in ",
                 source);
    tensors.push_back(std::move(record));
  }

  const TensorRecord* find(std::string_view name) const {
    for (const TensorRecord& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }

  const TensorRecord& at(std::string_view name) const {
    const TensorRecord* t = find(name);
    HAZE_REQUIRE(t != nullptr, "no tensor '", name, "' in ", source);
    return *t;
  }
};

namespace detail {

// Guards against a corrupt length field asking for gigabytes of JSON (the
// Python package's cap is 100,000,000 bytes).
inline constexpr uint64_t safetensors_max_header = 100ull << 20;

inline std::vector<std::byte> encode_safetensors(const Safetensors& file, std::string_view context) {
  std::unordered_set<std::string_view> names;
  for (const TensorRecord& t : file.tensors) {
    HAZE_REQUIRE(t.name != "__metadata__", "encode_safetensors '", context,
                 "': '__metadata__' is reserved, not a tensor name");
    HAZE_REQUIRE(names.insert(t.name).second, "encode_safetensors '", context, "': tensor '", t.name,
                 "' appears twice");
    const std::optional<int64_t> n = checked_numel(t.shape);
    HAZE_REQUIRE(n.has_value(), "encode_safetensors '", context, "': tensor '", t.name, "': invalid shape ",
                 shape_text(t.shape));
    HAZE_REQUIRE(static_cast<uint64_t>(*n) * dtype_size(t.dtype) == t.data.size(), "encode_safetensors '", context,
                 "': tensor '", t.name, "': ", dtype_name(t.dtype), " ", shape_text(t.shape), " needs ",
                 static_cast<uint64_t>(*n) * dtype_size(t.dtype), " bytes but holds ", t.data.size());
  }

  // The buffer holds wider dtypes first (stable, as the Python package does),
  // so every tensor starts at a multiple of its element size and can be used
  // in place; the header keeps insertion order.
  std::vector<const TensorRecord*> layout;
  for (const TensorRecord& t : file.tensors) layout.push_back(&t);
  // (Pointers into one vector order as insertion does: std::sort with them
  // as the tie-break is stable without std::stable_sort's temporary buffer,
  // which libstdc++ 12 gets through a deprecated call clang warns about.)
  std::sort(layout.begin(), layout.end(), [](const TensorRecord* a, const TensorRecord* b) {
    const size_t wa = dtype_size(a->dtype), wb = dtype_size(b->dtype);
    return wa != wb ? wa > wb : a < b;
  });
  std::map<const TensorRecord*, uint64_t> offsets;
  uint64_t offset = 0;
  for (const TensorRecord* t : layout) offsets[t] = std::exchange(offset, offset + t->data.size());

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  for (const TensorRecord& t : file.tensors) {
    header[t.name] = {{"dtype", std::string(dtype_name(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offsets[&t], offsets[&t] + t.data.size()}}};
  }

  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a name that is not valid UTF-8
    HAZE_REQUIRE(false, "encode_safetensors '", context, "': cannot write the JSON header: ", e.what());
  }
  // Pad with spaces so the data buffer starts 8-byte aligned, as the Python package does.
  text.append((8 - text.size() % 8) % 8, ' ');
  HAZE_REQUIRE(text.size() <= safetensors_max_header, "encode_safetensors '", context, "': the ", text.size(),
               "-byte header exceeds the limit of ", safetensors_max_header, " bytes");

  std::vector<std::byte> bytes(8 + text.size() + offset);
  const uint64_t length = text.size();
  std::memcpy(bytes.data(), &length, 8);  // little-endian host (static_assert above)
  std::memcpy(bytes.data() + 8, text.data(), text.size());
  std::byte* out = bytes.data() + 8 + text.size();
  for (const TensorRecord* t : layout) {
    if (!t->data.empty()) std::memcpy(out, t->data.data(), t->data.size());
    out += t->data.size();
  }
  return bytes;
}

// A JSON value for an error message, cut short: a crafted header can hold
// values of any size.
inline std::string json_excerpt(const nlohmann::ordered_json& value) {
  std::string text = value.dump();
  if (text.size() > 80) text.replace(77, std::string::npos, "...");
  return text;
}

// A non-negative JSON integer, or an error naming `what`.
inline uint64_t json_offset(const nlohmann::ordered_json& value, std::string_view source, std::string_view tensor,
                            std::string_view what) {
  HAZE_REQUIRE(value.is_number_integer(), "safetensors '", source, "': tensor '", tensor, "': ", what, " is ",
               json_excerpt(value), ", not an integer");
  HAZE_REQUIRE(value.is_number_unsigned(), "safetensors '", source, "': tensor '", tensor, "': ", what, " is ",
               json_excerpt(value), ", which is negative");
  return value.get<uint64_t>();
}

// Real headers nest 3 levels ({name: {"shape": [...]}}). nlohmann's parser is
// iterative, but copying, dumping and (before 3.11) destroying a value
// recurse once per level, so a deeper header is refused while it is parsed,
// before any of that runs on it.
inline constexpr int safetensors_max_depth = 64;

// The 8-byte length field, checked against the limit and the file size.
inline uint64_t safetensors_header_length(std::span<const std::byte> length_field, uint64_t file_size,
                                          std::string_view src) {
  HAZE_REQUIRE(file_size >= 8, "safetensors '", src, "': the file is ", file_size,
               " bytes, shorter than its 8-byte header length");
  uint64_t header_length = 0;
  std::memcpy(&header_length, length_field.data(), 8);  // little-endian host (static_assert above)
  HAZE_REQUIRE(header_length <= safetensors_max_header, "safetensors '", src, "': header length ", header_length,
               " exceeds the limit of ", safetensors_max_header, " bytes");
  HAZE_REQUIRE(header_length <= file_size - 8, "safetensors '", src, "': header length ", header_length,
               " runs past the end of the file (", file_size - 8, " bytes follow the length field)");
  return header_length;
}

// What a header describes: the tensors (their data still empty), where each
// one's bytes lie in the data buffer, and the buffer's size, which the
// tensors tile exactly.
struct SafetensorsLayout {
  Safetensors file;
  std::vector<std::pair<uint64_t, uint64_t>> extents;  // [begin, end) of file.tensors[i]
  uint64_t data_size = 0;
};

inline SafetensorsLayout parse_safetensors_header(std::string_view text, std::string_view src) {
  using json = nlohmann::ordered_json;
  // Duplicate tensor names would silently collapse to one in the parsed
  // object; catch them while parsing (depth 1 = keys of the top-level object).
  // `depth` counts the containers around an object or array that starts.
  std::unordered_set<std::string> top_level_keys;
  const json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      const std::string& key = parsed.get_ref<const std::string&>();
      HAZE_REQUIRE(top_level_keys.insert(key).second, "safetensors '", src, "': the header names '", key, "' twice");
    }
    if (event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) {
      HAZE_REQUIRE(depth < safetensors_max_depth, "safetensors '", src, "': the JSON header nests deeper than ",
                   safetensors_max_depth, " levels (a value at level ", depth + 1, ")");
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number past double's range
    HAZE_FAIL("safetensors '", src, "': the ", text.size(), "-byte header is not valid JSON: ", e.what());
  }
  HAZE_REQUIRE(header.is_object(), "safetensors '", src, "': the header is a JSON ", header.type_name(),
               ", not an object");

  SafetensorsLayout layout;
  layout.file.source = std::string(src);
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      HAZE_REQUIRE(entry.is_object(), "safetensors '", src, "': __metadata__ is a JSON ", entry.type_name(),
                   ", not an object of strings");
      for (const auto& [key, value] : entry.items()) {
        HAZE_REQUIRE(value.is_string(), "safetensors '", src, "': __metadata__ entry '", key, "' is ",
                     json_excerpt(value), ", not a string");
        layout.file.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    HAZE_REQUIRE(entry.is_object(), "safetensors '", src, "': tensor '", name, "': entry is a JSON ", entry.type_name(),
                 ", not an object");
    for (const char* field : {"dtype", "shape", "data_offsets"})
      HAZE_REQUIRE(entry.contains(field), "safetensors '", src, "': tensor '", name, "': missing \"", field, "\"");

    const json& dtype_json = entry["dtype"];
    HAZE_REQUIRE(dtype_json.is_string(), "safetensors '", src, "': tensor '", name, "': dtype is ",
                 json_excerpt(dtype_json), ", not a string");
    const std::string& dtype_text = dtype_json.get_ref<const std::string&>();
    const std::optional<DType> dtype = dtype_from_name(dtype_text);
    HAZE_REQUIRE(dtype.has_value(), "safetensors '", src, "': tensor '", name, "': unsupported dtype '", dtype_text,
                 "' (haze reads F32, F64, F16, BF16, I64, I32, U8)");

    const json& shape_json = entry["shape"];
    HAZE_REQUIRE(shape_json.is_array(), "safetensors '", src, "': tensor '", name, "': shape is ",
                 json_excerpt(shape_json), ", not an array");
    std::vector<int64_t> shape;
    for (size_t i = 0; i < shape_json.size(); ++i) {
      const std::string what = "shape[" + std::to_string(i) + "]";
      const uint64_t d = json_offset(shape_json[i], src, name, what);
      HAZE_REQUIRE(d <= uint64_t(INT64_MAX), "safetensors '", src, "': tensor '", name, "': ", what, " = ", d,
                   " is too large");
      shape.push_back(static_cast<int64_t>(d));
    }

    const json& offsets_json = entry["data_offsets"];
    HAZE_REQUIRE(offsets_json.is_array() && offsets_json.size() == 2, "safetensors '", src, "': tensor '", name,
                 "': data_offsets is ", json_excerpt(offsets_json), ", not [begin, end]");
    const uint64_t begin = json_offset(offsets_json[0], src, name, "data_offsets[0]");
    const uint64_t end = json_offset(offsets_json[1], src, name, "data_offsets[1]");
    HAZE_REQUIRE(begin <= end, "safetensors '", src, "': tensor '", name, "': data_offsets [", begin, ", ", end,
                 "] has begin > end");
    const std::optional<int64_t> numel = checked_numel(shape);
    uint64_t expected = 0;
    HAZE_REQUIRE(numel && !__builtin_mul_overflow(static_cast<uint64_t>(*numel), dtype_size(*dtype), &expected),
                 "safetensors '", src, "': tensor '", name, "': shape ", shape_text(shape), " has too many elements");
    HAZE_REQUIRE(end - begin == expected, "safetensors '", src, "': tensor '", name, "': data_offsets [", begin, ", ",
                 end, "] span ", end - begin, " bytes but ", dtype_name(*dtype), " ", shape_text(shape), " needs ",
                 expected);
    layout.file.tensors.push_back(TensorRecord{name, *dtype, std::move(shape), {}});
    layout.extents.emplace_back(begin, end);
  }

  // The tensors must tile the buffer: sorted by offset, each starts where the
  // previous one ended; the last one's end is the buffer's size.
  std::vector<size_t> order(layout.extents.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return layout.extents[a] < layout.extents[b]; });
  const TensorRecord* previous = nullptr;
  for (size_t i : order) {
    const auto [begin, end] = layout.extents[i];
    const TensorRecord& t = layout.file.tensors[i];
    const uint64_t cursor = layout.data_size;
    HAZE_REQUIRE(begin >= cursor, "safetensors '", src, "': tensor '", t.name, "' at data bytes [", begin, ", ", end,
                 ") overlaps tensor '", previous ? previous->name : "", "' which ends at ", cursor);
    HAZE_REQUIRE(begin == cursor, "safetensors '", src, "': data bytes [", cursor, ", ", begin,
                 ") belong to no tensor (a gap before tensor '", t.name, "')");
    layout.data_size = end;
    previous = &t;
  }
  return layout;
}

// The data buffer must be exactly as large as the header's tensors need.
inline void check_safetensors_data_size(const SafetensorsLayout& layout, uint64_t buffer_size, uint64_t header_length,
                                        std::string_view src) {
  HAZE_REQUIRE(buffer_size == layout.data_size, "safetensors '", src, "': the header's tensors cover ",
               layout.data_size, " data bytes but the file holds ", buffer_size,
               " bytes after the header (from file offset ", 8 + header_length, ")");
}

}  // namespace detail

inline std::vector<std::byte> encode_safetensors(const Safetensors& file) {
  return detail::encode_safetensors(file, file.source);
}

inline Safetensors decode_safetensors(std::span<const std::byte> bytes, std::string_view source) {
  const uint64_t header_length = detail::safetensors_header_length(bytes.first(std::min<size_t>(bytes.size(), 8)),
                                                                   bytes.size(), source);
  const std::span<const std::byte> header = bytes.subspan(8, header_length);
  detail::SafetensorsLayout layout = detail::parse_safetensors_header(
      std::string_view(reinterpret_cast<const char*>(header.data()), header.size()), source);
  const std::span<const std::byte> buffer = bytes.subspan(8 + header_length);
  detail::check_safetensors_data_size(layout, buffer.size(), header_length, source);
  for (size_t i = 0; i < layout.extents.size(); ++i) {
    const auto [begin, end] = layout.extents[i];
    layout.file.tensors[i].data.assign(buffer.begin() + static_cast<std::ptrdiff_t>(begin),
                                       buffer.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return std::move(layout.file);
}

// Writes atomically: a crash mid-save leaves the previous checkpoint intact.
inline void save_safetensors(const std::filesystem::path& path, const Safetensors& file) {
  write_file_atomically(path, detail::encode_safetensors(file, path.string()));
}

// Reads the length and the header first, then only the data the header
// describes, once the file's size matches it: a corrupt or sparse file of any
// size costs no more memory than its header.
inline Safetensors load_safetensors(const std::filesystem::path& path) {
  const std::string src = path.string();
  const InputFile input(path, "load_safetensors");
  std::byte length_field[8] = {};
  input.read_at(0, std::span(length_field, std::min<uint64_t>(input.size(), 8)));
  const uint64_t header_length = detail::safetensors_header_length(length_field, input.size(), src);
  std::string header(header_length, '\0');
  input.read_at(8, std::as_writable_bytes(std::span(header)));
  detail::SafetensorsLayout layout = detail::parse_safetensors_header(header, src);
  detail::check_safetensors_data_size(layout, input.size() - 8 - header_length, header_length, src);
  for (size_t i = 0; i < layout.extents.size(); ++i) {
    const auto [begin, end] = layout.extents[i];
    std::vector<std::byte>& data = layout.file.tensors[i].data;
    data.resize(end - begin);
    input.read_at(8 + header_length + begin, data);
  }
  return std::move(layout.file);
}

}  // namespace haze::io
