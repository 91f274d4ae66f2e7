// CsvLog (new, truncated and appended logs, header checks) and Progress (the
// plain-log cadence and the terminal redraw, through a pseudo-terminal).
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>

#include <algorithm>
#include <cmath>
#include <haze/io/csv_log.hpp>
#include <haze/io/progress.hpp>

#include "io/io_test_support.hpp"
#include "test_support.hpp"

using haze::io::CsvLog;
using haze::io::Progress;
using haze::test::mentions;
using haze::test::read_text;
using haze::test::TempDir;

TEST_CASE("CsvLog writes a header, then one flushed row per call", "[io][csv]") {
  TempDir dir;
  const auto path = dir / "log.csv";
  {
    CsvLog log(path, {"step", "loss", "lr"}, false);
    log.row({1, 0.5, 1e-4});
    CHECK(read_text(path) == "step,loss,lr\n1,0.5,0.0001\n");  // flushed before the log closes
    const std::vector<double> values{2, double(0.1f), 123456789012.0};
    log.row(values);
  }
  CHECK(read_text(path) == "step,loss,lr\n1,0.5,0.0001\n2,0.100000001,1.23456789e+11\n");

  {  // a resumed run appends below, without a second header
    CsvLog log(path, {"step", "loss", "lr"}, true);
    log.row({3, 0.25, 0});
  }
  CHECK(read_text(path) == "step,loss,lr\n1,0.5,0.0001\n2,0.100000001,1.23456789e+11\n3,0.25,0\n");

  {  // append = false starts over
    CsvLog log(path, {"step", "loss", "lr"}, false);
    log.row({1, 2, 3});
  }
  CHECK(read_text(path) == "step,loss,lr\n1,2,3\n");

  {  // appending to a missing or empty file writes the header first
    CsvLog log(dir / "fresh.csv", {"a"}, true);
    log.row({-1.5});
    haze::test::write_raw(dir / "empty.csv", {});
    CsvLog empty(dir / "empty.csv", {"b"}, true);
    empty.row({2});
  }
  CHECK(read_text(dir / "fresh.csv") == "a\n-1.5\n");
  CHECK(read_text(dir / "empty.csv") == "b\n2\n");
}

TEST_CASE("CsvLog continues a log cut mid-row on a fresh line", "[io][csv]") {
  TempDir dir;
  haze::test::write_raw(dir / "cut.csv", haze::test::as_bytes("step,loss\n1,0.5\n2,0.2"));
  {
    CsvLog log(dir / "cut.csv", {"step", "loss"}, true);
    log.row({3, 0.125});
  }
  CHECK(read_text(dir / "cut.csv") == "step,loss\n1,0.5\n2,0.2\n3,0.125\n");
}

TEST_CASE("CsvLog rejects a mismatched header and malformed rows", "[io][csv]") {
  TempDir dir;
  const auto path = dir / "log.csv";
  { CsvLog log(path, {"step", "loss"}, false); }
  CHECK_THROWS_WITH(
      CsvLog(path, {"step", "loss", "lr"}, true),
      mentions("CsvLog '" + path.string() + "': the file's header is 'step,loss' but this log writes 'step,loss,lr'"));
  CHECK(read_text(path) == "step,loss\n");  // untouched

  CsvLog log(path, {"step", "loss"}, true);
  CHECK_THROWS_WITH(log.row({1, 2, 3}), mentions("CsvLog '" + path.string() + "': a row of 3 values for 2 columns"));
  CHECK_THROWS_WITH(CsvLog(dir / "x.csv", {"a,b"}, false), mentions("column name 'a,b' is empty or holds a comma"));
  CHECK_THROWS_WITH(CsvLog(dir / "x.csv", {}, false), mentions("no columns"));
  CHECK_THROWS_WITH(CsvLog(dir / "missing" / "x.csv", {"a"}, false),
                    mentions("cannot open '" + (dir / "missing" / "x.csv").string() + "': No such file or directory"));
}

namespace {

std::vector<std::string> lines_of(std::FILE* file) {
  std::rewind(file);
  std::vector<std::string> lines;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, file)) lines.emplace_back(buffer);
  return lines;
}

}  // namespace

TEST_CASE("Progress off a terminal prints every total/20 steps and the last", "[io][progress]") {
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  {
    Progress progress(100, out);
    CHECK_FALSE(progress.on_terminal());
    for (int step = 1; step <= 100; ++step) progress.update(step, 1.0 / step, 250.0);
    progress.finish();
  }
  const std::vector<std::string> lines = lines_of(out);
  // step 1, then each multiple of 5 (the last included): 21 lines.
  REQUIRE(lines.size() == 21);
  CHECK_THAT(lines[0], mentions("step 1/100 loss 1 250.0 img/s"));
  CHECK_THAT(lines[1], mentions("step 5/100 loss 0.2 "));
  CHECK_THAT(lines[20], mentions("step 100/100 loss 0.01 250.0 img/s ETA 0s"));
  for (const std::string& line : lines) CHECK(line.find('\r') == std::string::npos);
  std::fclose(out);

  // A run stopped early: finish() shows the last update even between prints.
  out = std::tmpfile();
  {
    Progress progress(1000, out);
    for (int step = 1; step <= 37; ++step) progress.update(step, 0.5, 10.0);
  }  // the destructor finishes
  const std::vector<std::string> early = lines_of(out);
  REQUIRE(early.size() == 2);
  CHECK_THAT(early[1], mentions("step 37/1000 loss 0.5"));
  std::fclose(out);

  // Work without a loss (sampling) passes NaN and the line leaves it out.
  out = std::tmpfile();
  {
    Progress progress(10, out);
    progress.update(10, std::nan(""), 12.5);
  }
  const std::vector<std::string> no_loss = lines_of(out);
  REQUIRE(no_loss.size() == 1);
  CHECK_THAT(no_loss[0], mentions("step 10/10 12.5 img/s ETA"));
  std::fclose(out);

  CHECK_THROWS_WITH(Progress(0, stderr), mentions("Progress: total must be >= 1, got 0"));
}

TEST_CASE("Progress on a terminal redraws one line in place", "[io][progress]") {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  REQUIRE(master >= 0);
  REQUIRE(::grantpt(master) == 0);
  REQUIRE(::unlockpt(master) == 0);
  std::FILE* terminal = std::fopen(::ptsname(master), "w");
  REQUIRE(terminal != nullptr);
  {
    Progress progress(3, terminal);
    CHECK(progress.on_terminal());
    progress.update(1, 0.75, 12.5);
    progress.update(2, 0.5, 12.5);  // within 0.1 s of the first: not drawn
    progress.update(3, 0.25, 12.5);
    progress.finish();
  }
  std::fclose(terminal);

  std::string shown;
  char buffer[1024];
  while (::poll(std::array<pollfd, 1>{pollfd{master, POLLIN, 0}}.data(), 1, 200) > 0) {
    const ssize_t n = ::read(master, buffer, sizeof buffer);
    if (n <= 0) break;
    shown.append(buffer, size_t(n));
  }
  ::close(master);
  CHECK(std::count(shown.begin(), shown.end(), '\r') >= 2);
  CHECK_THAT(shown, mentions("\r[##########....................] 1/3 loss 0.75 12.5 img/s ETA ?"));
  CHECK_THAT(shown, mentions("\r[##############################] 3/3 loss 0.25 12.5 img/s ETA 0s"));
  CHECK(shown.find("2/3") == std::string::npos);
  CHECK(shown.back() == '\n');
}
