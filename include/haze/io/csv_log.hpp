#pragma once
// CsvLog: a training log as CSV (step, loss, learning rate, ...), one row per
// call, flushed at once so a crash loses nothing and a plot script can tail
// it. A resumed run appends to the same file after checking that its header
// matches the columns it is about to write.

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "haze/core/error.hpp"

namespace haze::io {

class CsvLog {
 public:
  // append = false truncates the file; append = true continues it (writing
  // the header first when the file is missing or empty).
  CsvLog(std::filesystem::path path, std::vector<std::string> columns, bool append)
      : path_(std::move(path)), columns_(std::move(columns)) {
    HAZE_REQUIRE(!columns_.empty(), "CsvLog '", path_.string(), "': no columns");
    std::string header;
    for (const std::string& name : columns_) {
      HAZE_REQUIRE(!name.empty() && name.find_first_of(",\"\r\n") == std::string::npos, "CsvLog '", path_.string(),
                   "': column name '", name, "' is empty or holds a comma, quote or newline");
      header += (header.empty() ? "" : ",") + name;
    }

    std::error_code error;
    const bool continuing = append && std::filesystem::file_size(path_, error) > 0 && !error;
    bool needs_newline = false;
    if (continuing) {
      std::ifstream existing(path_, std::ios::binary);
      std::string existing_header;
      std::getline(existing, existing_header);
      if (!existing_header.empty() && existing_header.back() == '\r') existing_header.pop_back();
      HAZE_REQUIRE(existing_header == header, "CsvLog '", path_.string(), "': the file's header is '", existing_header,
                   "' but this log writes '", header, "'");
      // A run killed mid-row leaves no final newline: start our rows on a fresh line.
      existing.clear();
      existing.seekg(-1, std::ios::end);
      needs_newline = existing.get() != '\n';
    }

    file_.reset(std::fopen(path_.c_str(), continuing ? "ab" : "wb"));
    HAZE_REQUIRE(file_ != nullptr, "CsvLog: cannot open '", path_.string(), "': ", std::strerror(errno));
    if (!continuing) write(header + "\n");
    if (needs_newline) write("\n");
  }

  void row(std::span<const double> values) {
    HAZE_REQUIRE(values.size() == columns_.size(), "CsvLog '", path_.string(), "': a row of ", values.size(),
                 " values for ", columns_.size(), " columns");
    std::string line;
    char number[32];
    for (size_t i = 0; i < values.size(); ++i) {
      std::snprintf(number, sizeof number, "%.9g", values[i]);  // 9 digits: floats round-trip exactly
      line += (i ? "," : "");
      line += number;
    }
    write(line + "\n");
  }
  void row(std::initializer_list<double> values) { row(std::span<const double>(values.begin(), values.size())); }

  const std::filesystem::path& path() const { return path_; }
  const std::vector<std::string>& columns() const { return columns_; }

 private:
  void write(const std::string& text) {
    const bool ok =
        std::fwrite(text.data(), 1, text.size(), file_.get()) == text.size() && std::fflush(file_.get()) == 0;
    HAZE_REQUIRE(ok, "CsvLog: writing '", path_.string(), "' failed: ", std::strerror(errno));
  }

  struct Close {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::filesystem::path path_;
  std::vector<std::string> columns_;
  std::unique_ptr<std::FILE, Close> file_;
};

}  // namespace haze::io
