// Regression tests for hostile files: each input once crashed, hung or
// exhausted memory in haze::io, and must now give a clean haze::Error whose
// text names the file and the numbers involved.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <haze/io/idx.hpp>
#include <haze/io/png.hpp>
#include <haze/io/safetensors.hpp>

#include "io/io_test_support.hpp"
#include "test_support.hpp"

using haze::test::as_bytes;
using haze::test::mentions;
using haze::test::TempDir;

namespace {

constexpr uint64_t eight_gib = uint64_t{8} << 30;

// [u64 length][header] with nothing after it.
std::vector<std::byte> safetensors_header(const std::string& header) {
  std::vector<std::byte> bytes(8 + header.size());
  const uint64_t length = header.size();
  std::memcpy(bytes.data(), &length, 8);
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  return bytes;
}

// Writes `bytes` and extends the file to `size` with a hole: no disk, no memory.
void write_sparse(const std::filesystem::path& path, const std::vector<std::byte>& bytes, uint64_t size) {
  haze::test::write_raw(path, bytes);
  REQUIRE(::truncate(path.c_str(), static_cast<off_t>(size)) == 0);
}

// The peak resident set so far, in bytes (Linux reports KiB).
uint64_t peak_rss() {
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  return uint64_t(usage.ru_maxrss) * 1024;
}

std::string nested(const std::string& open, const std::string& close, size_t depth, const std::string& inner) {
  std::string text;
  text.reserve(depth * (open.size() + close.size()) + inner.size());
  for (size_t i = 0; i < depth; ++i) text += open;
  text += inner;
  for (size_t i = 0; i < depth; ++i) text += close;
  return text;
}

// (Built with append: GCC 12 warns falsely (-Wrestrict) on "'" + s.)
std::string quoted(const std::filesystem::path& path) { return std::string("'").append(path.string()).append("'"); }

}  // namespace

TEST_CASE("load_safetensors reads only the data region its header describes", "[io][safetensors][hostile]") {
  TempDir dir;
  const auto path = dir / "sparse.safetensors";
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  const uint64_t data_offset = 8 + header.size();
  write_sparse(path, safetensors_header(header), eight_gib);

  const uint64_t rss_before = peak_rss();
  CHECK_THROWS_WITH(haze::io::load_safetensors(path),
                    mentions("safetensors " + quoted(path) + ": the header's tensors cover 4 data bytes but the file " +
                             "holds " + std::to_string(eight_gib - data_offset) +
                             " bytes after the header (from file offset " + std::to_string(data_offset) + ")"));
  CHECK(peak_rss() - rss_before < (uint64_t{256} << 20));  // the 8 GiB were never allocated nor read

  write_sparse(path, safetensors_header(header), data_offset + 3);
  CHECK_THROWS_WITH(haze::io::load_safetensors(path),
                    mentions("the header's tensors cover 4 data bytes but the file holds 3 bytes after the header"));

  // The same file with exactly its four data bytes loads.
  write_sparse(path, safetensors_header(header), data_offset + 4);
  CHECK(haze::io::load_safetensors(path).at("a").as<float>() == std::vector<float>{0.0f});
}

TEST_CASE("read_idx reads only the payload its header declares", "[io][idx][hostile]") {
  TempDir dir;
  const auto path = dir / "sparse-idx1-ubyte";
  const std::vector<std::byte> header{std::byte{0}, std::byte{0}, std::byte{8}, std::byte{1},
                                      std::byte{0}, std::byte{0}, std::byte{0}, std::byte{10}};
  write_sparse(path, header, eight_gib);
  const uint64_t rss_before = peak_rss();
  CHECK_THROWS_WITH(haze::io::read_idx(path), mentions("read_idx: " + quoted(path) + ": " +
                                                       std::to_string(eight_gib - 18) +
                                                       " trailing bytes after the 10-byte payload"));
  CHECK(peak_rss() - rss_before < (uint64_t{256} << 20));
}

TEST_CASE("safetensors refuses JSON nested deeper than 64 levels while parsing", "[io][safetensors][hostile]") {
  const auto decode = [](const std::string& header) {
    return haze::io::decode_safetensors(safetensors_header(header), "deep.safetensors");
  };
  const std::string refusal =
      "safetensors 'deep.safetensors': the JSON header nests deeper than 64 levels (a value at level 65)";
  // 200,000 levels (a 400 KB header) once overflowed the stack.
  const std::string deep = nested("[", "]", 200000, "");
  CHECK_THROWS_WITH(decode(R"({"a":{"dtype":)" + deep + R"(,"shape":[1],"data_offsets":[0,4]}})"), mentions(refusal));
  CHECK_THROWS_WITH(decode(R"({"__metadata__":{"k":)" + deep + "}}"), mentions(refusal));
  CHECK_THROWS_WITH(decode(nested(R"({"x":)", "}", 200000, "1")), mentions(refusal));

  // 64 levels parse (the top-level object, __metadata__, and 62 arrays);
  // the value is then refused for what it is, shown cut short.
  CHECK_THROWS_WITH(decode(R"({"__metadata__":{"k":)" + nested("[", "]", 62, "") + "}}"),
                    mentions("safetensors 'deep.safetensors': __metadata__ entry 'k' is " + std::string(62, '[') +
                             std::string(15, ']') + "..., not a string"));
  CHECK_THROWS_WITH(decode(R"({"__metadata__":{"k":)" + nested("[", "]", 63, "") + "}}"), mentions(refusal));
}

// Found by fuzz_safetensors (corpus/safetensors/crash-number-overflow):
// nlohmann reports a number past double's range as out_of_range, not as a
// parse_error, and it escaped as a foreign exception.
TEST_CASE("safetensors refuses a number out of double's range as invalid JSON", "[io][safetensors][hostile]") {
  const std::string header = R"({"a":1E400})";
  CHECK_THROWS_WITH(haze::io::decode_safetensors(safetensors_header(header), "big.safetensors"),
                    mentions("safetensors 'big.safetensors': the 11-byte header is not valid JSON: "
                             "[json.exception.out_of_range.406] number overflow parsing '1E400'"));
}

TEST_CASE("a FIFO is refused at once, not read", "[io][hostile]") {
  TempDir dir;
  const auto fifo = dir / "pipe";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  ::alarm(20);  // a regression would block in open() forever: let SIGALRM end the run instead
  const std::string what = quoted(fifo) + " is not a regular file (a FIFO)";
  CHECK_THROWS_WITH(haze::io::read_file(fifo), mentions("read_file: " + what));
  CHECK_THROWS_WITH(haze::io::load_safetensors(fifo), mentions("load_safetensors: " + what));
  CHECK_THROWS_WITH(haze::io::read_idx(fifo), mentions("read_idx: " + what));
  CHECK_THROWS_WITH(haze::io::read_png(fifo), mentions("read_file: " + what));
  ::alarm(0);
  CHECK_THROWS_WITH(haze::io::read_file(dir.path()),
                    mentions("read_file: " + quoted(dir.path()) + " is not a regular file (a directory)"));
}

TEST_CASE("a gzip IDX file stops inflating at the payload its header declares", "[io][idx][hostile]") {
  TempDir dir;
  const auto path = dir / "bomb.gz";
  // A valid header declaring 10 bytes, then 64 MiB of zeros (about 64 KB compressed).
  const std::vector<uint8_t> header{0, 0, 8, 1, 0, 0, 0, 10};
  const std::vector<uint8_t> zeros(size_t{1} << 20, 0);
  gzFile file = gzopen(path.c_str(), "wb9");
  REQUIRE(file != nullptr);
  REQUIRE(gzwrite(file, header.data(), unsigned(header.size())) == int(header.size()));
  for (int i = 0; i < 64; ++i) REQUIRE(gzwrite(file, zeros.data(), unsigned(zeros.size())) == int(zeros.size()));
  REQUIRE(gzclose(file) == Z_OK);
  REQUIRE(std::filesystem::file_size(path) < (size_t{1} << 20));

  // The first 64 KiB of output already run past the 18 bytes of header and payload.
  const std::string stop =
      ": the gzip data inflates to more than the 10 payload bytes its header declares (stopped after 65536 "
      "decompressed bytes)";
  CHECK_THROWS_WITH(haze::io::read_idx(path), mentions("read_idx: " + quoted(path) + stop));
  CHECK_THROWS_WITH(haze::io::decode_idx(haze::io::read_file(path), "bomb.gz"), mentions("decode_idx: 'bomb.gz'" + stop));
}

TEST_CASE("an empty raw IDX file is refused cleanly", "[io][idx][hostile]") {
  TempDir dir;
  const auto path = dir / "empty-idx1-ubyte";
  haze::test::write_raw(path, {});
  CHECK_THROWS_WITH(haze::io::read_idx(path),
                    mentions("read_idx: " + quoted(path) + ": 0 bytes is too short for the IDX magic"));
  CHECK_THROWS_WITH(haze::io::decode_idx({}, "empty"), mentions("decode_idx: 'empty': 0 bytes is too short"));
}

TEST_CASE("decode_idx reads raw and gzip bytes in memory", "[io][idx]") {
  const std::vector<std::byte> raw{std::byte{0}, std::byte{0}, std::byte{8}, std::byte{1}, std::byte{0},
                                   std::byte{0}, std::byte{0}, std::byte{2}, std::byte{7}, std::byte{9}};
  const haze::io::IdxArray array = haze::io::decode_idx(raw, "labels");
  CHECK(array.dims == std::vector<int64_t>{2});
  CHECK(array.data == std::vector<uint8_t>{7, 9});
}

TEST_CASE("a save removes the temporaries that killed writers left behind", "[io][atomic][hostile]") {
  TempDir dir;
  const pid_t dead = ::fork();  // a pid that is surely not running: a reaped child's
  REQUIRE(dead >= 0);
  if (dead == 0) _exit(0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);
  const std::string dead_pid = std::to_string(dead);
  const std::vector<std::string> stale = {"model.bin.tmp-" + dead_pid + "-0", "model.bin.tmp-" + dead_pid + "-17"};
  const std::vector<std::string> kept = {
      "model.bin.tmp-1-3",                          // pid 1 is alive: its writer may still be saving
      "model.bin.tmp-" + std::to_string(::getpid()) + "-999999",  // this process's own
      "other.bin.tmp-" + dead_pid + "-0",           // another target's
      "model.bin.tmp-" + dead_pid + "-x",           // not our pattern
      "model.bin.tmp-" + dead_pid,                  // not our pattern
  };
  for (const auto& name : stale) haze::test::write_raw(dir / name, as_bytes("torn"));
  for (const auto& name : kept) haze::test::write_raw(dir / name, as_bytes("keep"));

  haze::io::write_file_atomically(dir / "model.bin", as_bytes("new"));
  std::set<std::string> expected(kept.begin(), kept.end());
  expected.insert("model.bin");
  CHECK(dir.entries() == expected);

  // Leftovers of an earlier process that had this pid (a restarted container)
  // are left alone, but must not block the save by taking its names.
  for (int n = 0; n < 2000; ++n) {
    const std::string name = "model.bin.tmp-" + std::to_string(::getpid()) + "-" + std::to_string(n);
    haze::test::write_raw(dir / name, as_bytes("old"));
    expected.insert(name);
  }
  haze::io::write_file_atomically(dir / "model.bin", as_bytes("newer"));
  CHECK(haze::test::read_text(dir / "model.bin") == "newer");
  CHECK(dir.entries() == expected);
}

TEST_CASE("decode_png refuses headers that would make it allocate too much", "[io][png][hostile]") {
  // A valid 1x1 RGB PNG whose IHDR (with a recomputed CRC) claims another size.
  const auto with_size = [](uint32_t width, uint32_t height) {
    std::vector<std::byte> png = haze::io::encode_png(haze::io::Image{1, 1, 3, {1, 2, 3}});
    const auto put_u32 = [&](size_t at, uint32_t value) {
      for (int i = 0; i < 4; ++i) png[at + size_t(i)] = std::byte((value >> (24 - 8 * i)) & 0xff);
    };
    put_u32(16, width);  // signature 8, length 4, "IHDR" 4
    put_u32(20, height);
    put_u32(29, uint32_t(crc32(0, reinterpret_cast<const Bytef*>(png.data() + 12), 17)));  // type + 13 data bytes
    return png;
  };
  REQUIRE(haze::io::decode_png(with_size(1, 1), "ok.png").pixels == std::vector<uint8_t>{1, 2, 3});
  CHECK_THROWS_WITH(haze::io::decode_png(with_size(100000, 100000), "huge.png"),
                    mentions("decode_png: 'huge.png': a 100000x100000 image with 3 channels decodes to 30000000000 "
                             "bytes, over the limit of 268435456 bytes"));
  CHECK_THROWS_WITH(haze::io::decode_png(with_size(2000000, 1), "wide.png"),
                    mentions("decode_png: 'wide.png': Invalid IHDR data (libpng warned: Image width exceeds user "
                             "limit in IHDR)"));
}
