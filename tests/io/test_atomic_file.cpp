// write_file_atomically and read_file: the destination is either the old file
// or the complete new one, temporaries never outlive a failure, and errors
// name the path and the system's reason.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <haze/io/atomic_file.hpp>
#include <sstream>
#include <thread>

#include "io/io_test_support.hpp"
#include "test_support.hpp"

using haze::io::read_file;
using haze::io::write_file_atomically;
using haze::test::as_bytes;
using haze::test::mentions;
using haze::test::read_text;
using haze::test::TempDir;

TEST_CASE("write_file_atomically writes, replaces, and leaves only the file", "[io][atomic]") {
  TempDir dir;
  const auto path = dir / "model.bin";
  write_file_atomically(path, as_bytes("first version"));
  CHECK(read_text(path) == "first version");
  write_file_atomically(path, as_bytes("second"));
  CHECK(read_text(path) == "second");
  CHECK(dir.entries() == std::set<std::string>{"model.bin"});

  const std::vector<std::byte> back = read_file(path);
  CHECK(back == as_bytes("second"));

  write_file_atomically(path, {});  // an empty file is a valid file
  CHECK(std::filesystem::file_size(path) == 0);
  CHECK(read_file(path).empty());
}

TEST_CASE("read_file names a missing or unreadable file", "[io][atomic]") {
  TempDir dir;
  CHECK_THROWS_WITH(read_file(dir / "absent.bin"), mentions("read_file: cannot open '" + (dir / "absent.bin").string() +
                                                            "': No such file or directory"));
  CHECK_THROWS_WITH(read_file(dir.path()), mentions("'" + dir.path().string() + "' is not a regular file"));
}

TEST_CASE("a failed atomic write throws and leaves the old file untouched", "[io][atomic]") {
  TempDir dir;
  const auto path = dir / "checkpoint.safetensors";
  write_file_atomically(path, as_bytes("old contents"));

  SECTION("missing folder") {
    const auto missing = dir / "no" / "such" / "folder.bin";
    CHECK_THROWS_WITH(
        write_file_atomically(missing, as_bytes("x")),
        mentions("'" + missing.string() + "': cannot create the temporary") && mentions("No such file or directory"));
  }

  SECTION("read-only folder") {
    std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec |
                                                 std::filesystem::perms::others_read |
                                                 std::filesystem::perms::others_exec);
    const auto attempt = [&] {
      try {
        write_file_atomically(path, as_bytes("new contents"));
      } catch (const haze::Error& e) {
        const std::string message = e.what();
        return message.find("'" + path.string() + "': cannot create the temporary") != std::string::npos &&
               message.find("Permission denied") != std::string::npos;
      }
      return false;
    };
    if (::geteuid() != 0) {
      CHECK(attempt());
    } else {
      // root ignores folder permissions: try as the unprivileged user 'nobody' in a child.
      const pid_t child = ::fork();
      REQUIRE(child >= 0);
      if (child == 0) _exit(::setgid(65534) == 0 && ::setuid(65534) == 0 && attempt() ? 0 : 1);
      int status = 0;
      REQUIRE(::waitpid(child, &status, 0) == child);
      CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
    }
    std::filesystem::permissions(dir.path(), std::filesystem::perms::owner_all);
  }

  SECTION("rename fails: the destination is a non-empty folder") {
    const auto folder = dir / "occupied";
    std::filesystem::create_directory(folder);
    write_file_atomically(folder / "inside.txt", as_bytes("keep me"));
    CHECK_THROWS_WITH(write_file_atomically(folder, as_bytes("new contents")),
                      mentions("'" + folder.string() + "': renaming the temporary over it failed"));
    CHECK(read_text(folder / "inside.txt") == "keep me");
  }

  SECTION("a write fails half way (file size limit): no temporary is left") {
    struct rlimit saved {};
    REQUIRE(getrlimit(RLIMIT_FSIZE, &saved) == 0);
    struct rlimit small = saved;
    small.rlim_cur = 1000;                                   // bytes
    auto* previous_handler = std::signal(SIGXFSZ, SIG_IGN);  // get EFBIG instead of a signal
    REQUIRE(setrlimit(RLIMIT_FSIZE, &small) == 0);
    const std::vector<std::byte> big(4096, std::byte{7});
    bool threw = false;
    std::string message;
    try {
      write_file_atomically(path, big);
    } catch (const haze::Error& e) {
      threw = true;
      message = e.what();
    }
    REQUIRE(setrlimit(RLIMIT_FSIZE, &saved) == 0);
    std::signal(SIGXFSZ, previous_handler);
    CHECK(threw);
    CHECK_THAT(message, mentions("writing the temporary failed: File too large"));
  }

  // Whatever failed, the old file is byte-identical and no temporary remains.
  CHECK(read_text(path) == "old contents");
  std::set<std::string> names = dir.entries();
  names.erase("occupied");
  CHECK(names == std::set<std::string>{"checkpoint.safetensors"});
}

TEST_CASE("concurrent atomic writers never see each other's temporaries", "[io][atomic]") {
  TempDir dir;
  const auto path = dir / "shared.bin";
  std::vector<std::thread> writers;
  for (int w = 0; w < 4; ++w)
    writers.emplace_back([&, w] {
      const std::string text(1000, char('a' + w));
      for (int i = 0; i < 20; ++i) write_file_atomically(path, as_bytes(text));
    });
  for (auto& t : writers) t.join();
  const std::string final_text = read_text(path);
  REQUIRE(final_text.size() == 1000);
  CHECK(final_text == std::string(1000, final_text[0]));  // one writer's whole file, never a mix
  CHECK(dir.entries() == std::set<std::string>{"shared.bin"});
}

// DESIGN.md: io stands apart from the math. The file-format headers include
// nothing from haze but core/error.hpp and each other.
TEST_CASE("io headers include nothing from haze but core/error.hpp", "[io]") {
  const std::filesystem::path io_dir = std::filesystem::path(HAZE_SOURCE_DIR) / "include/haze/io";
  for (const char* header :
       {"atomic_file.hpp", "safetensors.hpp", "idx.hpp", "png.hpp", "plot.hpp", "csv_log.hpp", "progress.hpp"}) {
    std::istringstream lines(read_text(io_dir / header));
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("#include", 0) != 0) continue;
      const size_t at = line.find("haze/");
      if (at == std::string::npos) continue;
      const std::string target = line.substr(at, line.find_first_of("\">", at) - at);
      INFO(header << " includes " << target);
      CHECK((target == "haze/core/error.hpp" || target.rfind("haze/io/", 0) == 0));
    }
  }
}
