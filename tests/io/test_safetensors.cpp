// safetensors: exact byte layout, round trips of every dtype, and one crafted
// file per validation rule, each error checked for what it names.
#include <cstdlib>
#include <cstring>
#include <haze/io/safetensors.hpp>

#include "io/io_test_support.hpp"
#include "test_support.hpp"

using haze::io::decode_safetensors;
using haze::io::DType;
using haze::io::encode_safetensors;
using haze::io::Safetensors;
using haze::io::TensorRecord;
using haze::test::mentions;
using haze::test::TempDir;

namespace {

// [u64 length][header][data_bytes zero bytes], with the length given
// explicitly or taken from the header.
std::vector<std::byte> craft(const std::string& header, size_t data_bytes, std::optional<uint64_t> length = {}) {
  const uint64_t n = length.value_or(header.size());
  std::vector<std::byte> bytes(8 + header.size() + data_bytes, std::byte{0});
  std::memcpy(bytes.data(), &n, 8);
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  return bytes;
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}

Safetensors decode(const std::vector<std::byte>& bytes) { return decode_safetensors(bytes, "bad.safetensors"); }

}  // namespace

TEST_CASE("safetensors: the byte layout is the documented one", "[io][safetensors]") {
  Safetensors file;
  file.add(TensorRecord::from<float>("a", {2}, std::vector<float>{1.0f, -2.0f}));
  const std::vector<std::byte> bytes = encode_safetensors(file);

  const std::string json = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const size_t padded = (json.size() + 7) / 8 * 8;
  REQUIRE(bytes.size() == 8 + padded + 8);
  uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  CHECK(length == padded);
  const std::string header(reinterpret_cast<const char*>(bytes.data() + 8), padded);
  CHECK(header == json + std::string(padded - json.size(), ' '));
  float values[2];
  std::memcpy(values, bytes.data() + 8 + padded, 8);
  CHECK(values[0] == 1.0f);
  CHECK(values[1] == -2.0f);
}

TEST_CASE("safetensors: the buffer puts wider dtypes first, the header keeps insertion order", "[io][safetensors]") {
  Safetensors file;
  file.add(TensorRecord::from<uint8_t>("bytes", {3}, std::vector<uint8_t>{1, 2, 3}));
  file.add(TensorRecord::from<float>("single", {1}, std::vector<float>{4}));
  file.add(TensorRecord::from<double>("double", {2}, std::vector<double>{5, 6}));
  file.add(TensorRecord::from<int32_t>("int", {1}, std::vector<int32_t>{7}));
  const std::vector<std::byte> bytes = encode_safetensors(file);
  uint64_t length = 0;
  std::memcpy(&length, bytes.data(), 8);
  const auto header =
      nlohmann::ordered_json::parse(std::string(reinterpret_cast<const char*>(bytes.data() + 8), length));
  std::vector<std::string> keys;
  for (const auto& [key, value] : header.items()) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"bytes", "single", "double", "int"});
  CHECK(header["double"]["data_offsets"] == nlohmann::json::array({0, 16}));
  CHECK(header["single"]["data_offsets"] == nlohmann::json::array({16, 20}));
  CHECK(header["int"]["data_offsets"] == nlohmann::json::array({20, 24}));
  CHECK(header["bytes"]["data_offsets"] == nlohmann::json::array({24, 27}));
  const Safetensors back = decode_safetensors(bytes, "aligned");
  CHECK(back.at("double").as<double>() == std::vector<double>{5, 6});
  CHECK(back.at("bytes").as<uint8_t>() == std::vector<uint8_t>{1, 2, 3});
}

TEST_CASE("safetensors: every dtype, scalars, empty tensors and metadata round-trip", "[io][safetensors]") {
  const std::vector<float> f32{1.5f, -0.0f, 3.25e-8f, std::numeric_limits<float>::infinity(), 7, 8};
  const std::vector<double> f64{0.1, -1e300};
  const std::vector<int64_t> i64{INT64_MIN, -1, 0, INT64_MAX};
  const std::vector<int32_t> i32{INT32_MIN, 42, INT32_MAX};
  const std::vector<uint8_t> u8{0, 1, 254, 255, 9};

  Safetensors file;
  file.metadata = {{"format", "pt"}, {"step", "1200"}};
  file.add(TensorRecord::from<float>("z.f32", {2, 3}, f32));  // names deliberately not sorted
  file.add(TensorRecord::from<double>("a.f64", {2}, f64));
  file.add(TensorRecord::from<int64_t>("m.i64", {2, 1, 2}, i64));
  file.add(TensorRecord::from<int32_t>("scalar_and_more.i32", {3}, i32));
  file.add(TensorRecord::from<uint8_t>("u8", {5}, u8));
  file.add(TensorRecord::from<double>("scalar", {}, std::vector<double>{2.5}));
  file.add(TensorRecord::from<float>("empty", {0, 4}, std::vector<float>{}));

  TempDir dir;
  haze::io::save_safetensors(dir / "all.safetensors", file);
  const Safetensors back = haze::io::load_safetensors(dir / "all.safetensors");
  CHECK(back.source == (dir / "all.safetensors").string());
  CHECK(back.metadata == file.metadata);
  REQUIRE(back.tensors.size() == file.tensors.size());
  for (size_t i = 0; i < file.tensors.size(); ++i) {  // insertion order is kept
    CHECK(back.tensors[i].name == file.tensors[i].name);
    CHECK(back.tensors[i].dtype == file.tensors[i].dtype);
    CHECK(back.tensors[i].shape == file.tensors[i].shape);
    CHECK(back.tensors[i].data == file.tensors[i].data);
  }
  CHECK(back.at("z.f32").as<float>() == f32);
  CHECK(back.at("a.f64").as<double>() == f64);
  CHECK(back.at("m.i64").as<int64_t>() == i64);
  CHECK(back.at("scalar_and_more.i32").as<int32_t>() == i32);
  CHECK(back.at("u8").as<uint8_t>() == u8);
  CHECK(back.at("scalar").numel() == 1);
  CHECK(back.at("scalar").as<double>() == std::vector<double>{2.5});
  CHECK(back.at("empty").numel() == 0);
  CHECK(back.at("empty").as<float>().empty());
  CHECK(back.find("nope") == nullptr);
  CHECK(haze::io::dtype_size(DType::I64) == 8);
  CHECK(haze::io::dtype_name(DType::U8) == "U8");
}

TEST_CASE("safetensors: files laid out by other writers decode", "[io][safetensors]") {
  // The Python package sorts its buffer by dtype and name, not header order,
  // and puts __metadata__ first; tensors come back in header order.
  const std::string header = "{\"__metadata__\":{\"format\":\"pt\"}," + entry("b", "I32", "[1]", "[8,12]") + "," +
                             entry("a", "F64", "[1]", "[0,8]") + "}   ";
  std::vector<std::byte> bytes = craft(header, 12);
  const double a = 0.5;
  const int32_t b = -7;
  std::memcpy(bytes.data() + 8 + header.size(), &a, 8);
  std::memcpy(bytes.data() + 8 + header.size() + 8, &b, 4);
  const Safetensors file = decode_safetensors(bytes, "python.safetensors");
  REQUIRE(file.tensors.size() == 2);
  CHECK(file.tensors[0].name == "b");
  CHECK(file.tensors[1].name == "a");
  CHECK(file.at("a").as<double>() == std::vector<double>{0.5});
  CHECK(file.at("b").as<int32_t>() == std::vector<int32_t>{-7});
  CHECK(file.metadata.at("format") == "pt");
}

TEST_CASE("safetensors: records and files reject misuse by name", "[io][safetensors]") {
  CHECK_THROWS_WITH(TensorRecord::from<float>("w", {2, 3}, std::vector<float>(5)),
                    mentions("tensor 'w': shape [2, 3] holds 6 elements but 5 values were given"));
  CHECK_THROWS_WITH(TensorRecord::from<float>("w", {-1}, std::vector<float>{}),
                    mentions("tensor 'w': invalid shape [-1]"));
  const TensorRecord r = TensorRecord::from<double>("w", {1}, std::vector<double>{1.0});
  CHECK_THROWS_WITH(r.as<float>(), mentions("tensor 'w' holds F64, not F32"));

  Safetensors file;
  file.add(r);
  CHECK_THROWS_WITH(file.add(r), mentions("a tensor named 'w' is already in <memory>"));
  CHECK_THROWS_WITH(file.add(TensorRecord::from<float>("__metadata__", {1}, std::vector<float>{1})),
                    mentions("'__metadata__' is reserved"));
  CHECK_THROWS_WITH(file.at("missing"), mentions("no tensor 'missing' in <memory>"));

  file.tensors.push_back(r);  // around add(): encode still checks
  CHECK_THROWS_WITH(encode_safetensors(file), mentions("tensor 'w' appears twice"));
  file.tensors.pop_back();
  TensorRecord broken = TensorRecord::from<float>("broken", {2, 2}, std::vector<float>(4));
  broken.data.resize(12);
  file.tensors.push_back(broken);
  CHECK_THROWS_WITH(encode_safetensors(file), mentions("tensor 'broken': F32 [2, 2] needs 16 bytes but holds 12"));
  TempDir dir;
  CHECK_THROWS_WITH(haze::io::save_safetensors(dir / "x.safetensors", file),
                    mentions("encode_safetensors '" + (dir / "x.safetensors").string() + "'"));
  CHECK(dir.entries().empty());

  CHECK_THROWS_WITH(haze::io::load_safetensors(dir / "absent.safetensors"),
                    mentions((dir / "absent.safetensors").string()) && mentions("No such file"));
  Safetensors empty;
  haze::io::save_safetensors(dir / "empty.safetensors", empty);
  const Safetensors loaded = haze::io::load_safetensors(dir / "empty.safetensors");
  CHECK(loaded.tensors.empty());
  CHECK_THROWS_WITH(loaded.at("x"), mentions("no tensor 'x' in " + (dir / "empty.safetensors").string()));
}

TEST_CASE("safetensors: the length field is checked against the file", "[io][safetensors]") {
  CHECK_THROWS_WITH(
      decode(std::vector<std::byte>(5)),
      mentions("safetensors 'bad.safetensors': the file is 5 bytes, shorter than its 8-byte header length"));
  CHECK_THROWS_WITH(decode(craft("{}", 0, uint64_t{200} << 20)),
                    mentions("'bad.safetensors': header length 209715200 exceeds the limit of 104857600 bytes"));
  CHECK_THROWS_WITH(decode(craft("{}", 10, 100)),
                    mentions("'bad.safetensors': header length 100 runs past the end of the file (12 bytes follow"));
}

TEST_CASE("safetensors: the header must be a JSON object of well-formed entries", "[io][safetensors]") {
  CHECK_THROWS_WITH(decode(craft("{\"a\": ", 0)),
                    mentions("'bad.safetensors': the 6-byte header is not valid JSON: ") && mentions("parse error"));
  CHECK_THROWS_WITH(decode(craft("[1, 2]", 0)),
                    mentions("'bad.safetensors': the header is a JSON array, not an object"));
  CHECK_THROWS_WITH(decode(craft(R"({"a": 3})", 0)), mentions("tensor 'a': entry is a JSON number, not an object"));
  CHECK_THROWS_WITH(decode(craft(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4)),
                    mentions("'bad.safetensors': tensor 'a': missing \"dtype\""));
  CHECK_THROWS_WITH(decode(craft(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4)),
                    mentions("tensor 'a': missing \"shape\""));
  CHECK_THROWS_WITH(decode(craft(R"({"a": {"dtype": "F32", "shape": [1]}})", 4)),
                    mentions("tensor 'a': missing \"data_offsets\""));
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F8_E4M3", "[1]", "[0,1]") + "}", 1)),
                    mentions("'bad.safetensors': tensor 'a': unsupported dtype 'F8_E4M3'"));
  CHECK_THROWS_WITH(decode(craft(R"({"a": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}})", 4)),
                    mentions("tensor 'a': dtype is 4, not a string"));
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F32", "3", "[0,12]") + "}", 12)),
                    mentions("tensor 'a': shape is 3, not an array"));
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F32", "[3,-2]", "[0,12]") + "}", 12)),
                    mentions("tensor 'a': shape[1] is -2, which is negative"));
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F32", "[1.5]", "[0,4]") + "}", 4)),
                    mentions("tensor 'a': shape[0] is 1.5, not an integer"));
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F32", "[\"2\"]", "[0,8]") + "}", 8)),
                    mentions("tensor 'a': shape[0] is \"2\", not an integer"));
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F32", "[1]", "[0]") + "}", 4)),
                    mentions("tensor 'a': data_offsets is [0], not [begin, end]"));
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F32", "[1]", "[-4,0]") + "}", 4)),
                    mentions("tensor 'a': data_offsets[0] is -4, which is negative"));
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F32", "[4000000000,4000000000,4000000000]", "[0,4]") + "}", 4)),
                    mentions("tensor 'a': shape [4000000000, 4000000000, 4000000000] has too many elements"));
  CHECK_THROWS_WITH(
      decode(craft("{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("a", "F32", "[1]", "[0,4]") + "}", 4)),
      mentions("'bad.safetensors': the header names 'a' twice"));
}

TEST_CASE("safetensors: metadata must map strings to strings", "[io][safetensors]") {
  CHECK_THROWS_WITH(decode(craft(R"({"__metadata__": ["x"]})", 0)),
                    mentions("'bad.safetensors': __metadata__ is a JSON array, not an object of strings"));
  CHECK_THROWS_WITH(decode(craft(R"({"__metadata__": {"ok": "yes", "step": 12}})", 0)),
                    mentions("'bad.safetensors': __metadata__ entry 'step' is 12, not a string"));
  const Safetensors only_metadata = decode(craft(R"({"__metadata__": {"k": "v"}})", 0));
  CHECK(only_metadata.tensors.empty());
  CHECK(only_metadata.metadata.at("k") == "v");
}

TEST_CASE("safetensors: data offsets must fit and tile the buffer exactly", "[io][safetensors]") {
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F32", "[1]", "[8,4]") + "}", 8)),
                    mentions("'bad.safetensors': tensor 'a': data_offsets [8, 4] has begin > end"));
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F32", "[4]", "[0,16]") + "}", 12)),
                    mentions("'bad.safetensors': the header's tensors cover 16 data bytes but the file holds 12 "
                             "bytes after the header (from file offset 63)"));
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F64", "[2,2]", "[0,16]") + "}", 16)),
                    mentions("tensor 'a': data_offsets [0, 16] span 16 bytes but F64 [2, 2] needs 32"));
  // a [0, 8) and b [4, 12): overlap.
  CHECK_THROWS_WITH(
      decode(craft("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}", 12)),
      mentions("'bad.safetensors': tensor 'b' at data bytes [4, 12) overlaps tensor 'a' which ends at 8"));
  // a [0, 8) and b [12, 20): a gap of four bytes between them.
  CHECK_THROWS_WITH(
      decode(craft("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[12,20]") + "}", 20)),
      mentions("'bad.safetensors': data bytes [8, 12) belong to no tensor (a gap before tensor 'b')"));
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F32", "[2]", "[4,12]") + "}", 12)),
                    mentions("data bytes [0, 4) belong to no tensor (a gap before tensor 'a')"));
  CHECK_THROWS_WITH(decode(craft("{" + entry("a", "F32", "[2]", "[0,8]") + "}", 11)),
                    mentions("'bad.safetensors': the header's tensors cover 8 data bytes but the file holds 11 bytes"));
  CHECK_THROWS_WITH(decode(craft("{}", 3)),
                    mentions("the header's tensors cover 0 data bytes but the file holds 3 bytes after the header "
                             "(from file offset 10)"));
  // Zero-size tensors may sit anywhere on the tiling, as the Python package allows.
  const Safetensors ok =
      decode(craft("{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("e", "F32", "[0]", "[8,8]") + "}", 8));
  CHECK(ok.tensors.size() == 2);
}

// Run by hand with the Python package (see tests/io/safetensors_crosscheck.py):
//   HAZE_CROSSCHECK_DIR=/tmp/x haze_io_tests "[crosscheck]"
// writes haze.safetensors there and, if python.safetensors is present, reads it.
TEST_CASE("safetensors: cross-check files with the Python package", "[.][crosscheck]") {
  const char* where = std::getenv("HAZE_CROSSCHECK_DIR");
  REQUIRE(where != nullptr);
  const std::filesystem::path dir(where);
  Safetensors file;
  file.metadata = {{"writer", "haze"}};
  std::vector<float> f32(6);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = 0.5f * float(i) - 1.0f;
  file.add(TensorRecord::from<float>("f32", {2, 3}, f32));
  file.add(TensorRecord::from<double>("f64", {3}, std::vector<double>{0.1, -2.5, 1e300}));
  file.add(TensorRecord::from<int64_t>("i64", {2}, std::vector<int64_t>{-(int64_t(1) << 40), 7}));
  file.add(TensorRecord::from<int32_t>("i32", {1, 2}, std::vector<int32_t>{-3, 1 << 30}));
  file.add(TensorRecord::from<uint8_t>("u8", {3}, std::vector<uint8_t>{0, 128, 255}));
  file.add(TensorRecord::from<float>("scalar", {}, std::vector<float>{3.5f}));
  haze::io::save_safetensors(dir / "haze.safetensors", file);

  if (std::filesystem::exists(dir / "python.safetensors")) {
    const Safetensors py = haze::io::load_safetensors(dir / "python.safetensors");
    CHECK(py.metadata.at("writer") == "python");
    for (const TensorRecord& t : file.tensors) {
      INFO(t.name);
      const TensorRecord& p = py.at(t.name);
      CHECK(p.dtype == t.dtype);
      CHECK(p.shape == t.shape);
      CHECK(p.data == t.data);
    }
  }
}
