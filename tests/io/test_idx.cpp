// read_idx: hand-made raw and gzip files, each malformation rejected with a
// message naming the file, and the real Fashion-MNIST test labels.
#include <zlib.h>

#include <array>
#include <haze/io/idx.hpp>

#include "io/io_test_support.hpp"
#include "test_support.hpp"

using haze::io::read_idx;
using haze::test::mentions;
using haze::test::TempDir;

namespace {

std::vector<std::byte> idx_bytes(std::vector<uint32_t> dims, size_t payload, uint8_t type = 0x08,
                                 std::array<uint8_t, 2> magic = {0, 0}) {
  std::vector<std::byte> bytes{std::byte{magic[0]}, std::byte{magic[1]}, std::byte{type}, std::byte(dims.size())};
  for (uint32_t d : dims)
    for (int shift : {24, 16, 8, 0}) bytes.push_back(std::byte((d >> shift) & 0xff));
  for (size_t i = 0; i < payload; ++i) bytes.push_back(std::byte(i * 7 % 251));
  return bytes;
}

// Written with zlib's gzip writer, as the dataset files are; `members` > 1
// splits the bytes over several concatenated gzip members.
void write_gzip(const std::filesystem::path& path, const std::vector<std::byte>& bytes, int members = 1) {
  const size_t cut = bytes.size() / size_t(members);
  for (int m = 0; m < members; ++m) {
    gzFile file = gzopen(path.c_str(), m == 0 ? "wb" : "ab");
    REQUIRE(file != nullptr);
    const size_t begin = size_t(m) * cut, end = m + 1 == members ? bytes.size() : begin + cut;
    REQUIRE(gzwrite(file, bytes.data() + begin, unsigned(end - begin)) == int(end - begin));
    REQUIRE(gzclose(file) == Z_OK);
  }
}

}  // namespace

TEST_CASE("read_idx reads raw and gzip files", "[io][idx]") {
  TempDir dir;
  const std::vector<std::byte> bytes = idx_bytes({3, 2, 4}, 24);
  std::vector<uint8_t> payload(24);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = uint8_t(i * 7 % 251);

  haze::test::write_raw(dir / "raw-idx3-ubyte", bytes);
  write_gzip(dir / "one.gz", bytes);
  write_gzip(dir / "three.gz", bytes, 3);
  for (const char* name : {"raw-idx3-ubyte", "one.gz", "three.gz"}) {
    INFO(name);
    const haze::io::IdxArray array = read_idx(dir / name);
    CHECK(array.dims == std::vector<int64_t>{3, 2, 4});
    CHECK(array.data == payload);
  }

  haze::test::write_raw(dir / "labels", idx_bytes({5}, 5));
  CHECK(read_idx(dir / "labels").dims == std::vector<int64_t>{5});
}

TEST_CASE("read_idx rejects malformed files, naming the file", "[io][idx]") {
  TempDir dir;
  const auto path = dir / "bad-idx";
  const std::string name =
      std::string("'").append(path.string()).append("'");  // (GCC 12 -Wrestrict false positive on "'" + s)
  const auto rejects = [&](const std::vector<std::byte>& bytes, const std::string& message) {
    haze::test::write_raw(path, bytes);
    CHECK_THROWS_WITH(read_idx(path), mentions("read_idx: " + name + ": " + message));
  };
  rejects(idx_bytes({4}, 4, 0x08, {0x01, 0x02}), "not an IDX file: magic starts 0x01 0x02, expected 0x00 0x00");
  rejects(idx_bytes({4}, 16, 0x0D), "type code 0x0d (float) is not supported; only 0x08 (unsigned byte)");
  rejects(idx_bytes({4}, 4, 0x42), "type code 0x42 (unknown) is not supported");
  rejects(idx_bytes({}, 0), "0 dimensions; expected 1 to 4");
  rejects(idx_bytes({1, 1, 1, 1, 1}, 1), "5 dimensions; expected 1 to 4");
  rejects(idx_bytes({2, 0}, 0), "dimension 1 is 0");
  rejects(idx_bytes({3, 4}, 10), "truncated: the dimensions need 12 payload bytes, got 10");
  rejects(idx_bytes({3, 4}, 13), "1 trailing bytes after the 12-byte payload");
  rejects(idx_bytes({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, 3),
          "the dimensions multiply to more than 2^64 payload bytes (dimension 2 is 4294967295)");
  rejects(idx_bytes({0xffffffff, 0xffffffff}, 3), "truncated: the dimensions need 18446744065119617025 payload bytes");
  std::vector<std::byte> short_header = idx_bytes({3, 4}, 0);
  short_header.resize(9);
  rejects(short_header, "9 bytes is too short for the 2 dimensions of the header (12 bytes)");
  rejects({std::byte{0}, std::byte{0}}, "2 bytes is too short for the IDX magic");

  CHECK_THROWS_WITH(read_idx(dir / "absent.gz"),
                    mentions("'" + (dir / "absent.gz").string() + "'") && mentions("No such file or directory"));
}

TEST_CASE("read_idx rejects truncated and corrupt gzip data", "[io][idx]") {
  TempDir dir;
  write_gzip(dir / "whole.gz", idx_bytes({100}, 100));
  const std::vector<std::byte> whole = haze::io::read_file(dir / "whole.gz");

  std::vector<std::byte> cut(whole.begin(), whole.begin() + std::ptrdiff_t(whole.size() / 2));
  haze::test::write_raw(dir / "cut.gz", cut);
  CHECK_THROWS_WITH(read_idx(dir / "cut.gz"),
                    mentions("read_idx: '" + (dir / "cut.gz").string() + "': the gzip stream is truncated"));

  std::vector<std::byte> corrupt = whole;
  corrupt[corrupt.size() - 6] ^= std::byte{0xff};  // inside the CRC-32 trailer
  haze::test::write_raw(dir / "corrupt.gz", corrupt);
  CHECK_THROWS_WITH(read_idx(dir / "corrupt.gz"),
                    mentions("read_idx: '" + (dir / "corrupt.gz").string() + "': corrupt gzip data") &&
                        mentions("incorrect data check"));
}

TEST_CASE("read_idx reads the Fashion-MNIST test set", "[io][idx][dataset]") {
  const std::filesystem::path dir = HAZE_FASHION_MNIST_DIR;
  if (!std::filesystem::exists(dir / "t10k-labels-idx1-ubyte.gz")) {
    WARN("Fashion-MNIST is not installed in " << dir << " (apt-get install dataset-fashion-mnist): not checked");
    return;
  }
  const haze::io::IdxArray labels = read_idx(dir / "t10k-labels-idx1-ubyte.gz");
  REQUIRE(labels.dims == std::vector<int64_t>{10000});
  std::array<int, 10> per_class{};
  for (uint8_t label : labels.data) {
    REQUIRE(label < 10);
    ++per_class[label];
  }
  for (int count : per_class) CHECK(count == 1000);  // the test set is balanced

  const haze::io::IdxArray images = read_idx(dir / "t10k-images-idx3-ubyte.gz");
  CHECK(images.dims == std::vector<int64_t>{10000, 28, 28});
  CHECK(images.data.size() == size_t(10000 * 28 * 28));
}
