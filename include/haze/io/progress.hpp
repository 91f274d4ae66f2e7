#pragma once
// Progress: training progress on stderr. On a terminal one line is redrawn in
// place ('\r'): a bar, step/total, loss, throughput and ETA, at most ten times
// a second. Redirected to a file or a CI log it prints plain lines instead, at
// most every 10 s or every total/20 steps, and always the last step. A NaN
// loss (work with no loss, such as sampling) leaves the loss out of the line.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "haze/core/error.hpp"

namespace haze::io {

class Progress {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Progress(int64_t total, std::FILE* out = stderr)
      : total_(total), out_(out), terminal_(out != nullptr && ::isatty(::fileno(out)) == 1) {
    HAZE_REQUIRE(total >= 1, "Progress: total must be >= 1, got ", total);
    HAZE_REQUIRE(out != nullptr, "Progress: no output stream");
  }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress() {
    try {
      finish();
    } catch (...) {  // a destructor must not throw; the progress line is not worth it
    }
  }

  void update(int64_t step, double loss, double items_per_second) {
    const Clock::time_point now = Clock::now();
    if (updates_ == 0) first_step_ = step, first_time_ = now;
    ++updates_;
    step_ = step, loss_ = loss, rate_ = items_per_second, now_ = now;
    const bool last = step >= total_;
    const double since_shown = std::chrono::duration<double>(now - shown_time_).count();
    bool show;
    if (terminal_) {
      show = !shown_any_ || last || since_shown >= 0.1;
    } else {
      const int64_t interval = std::max<int64_t>(1, total_ / 20);
      show = !shown_any_ || last || step / interval > shown_step_ / interval || since_shown >= 10.0;
    }
    if (show) draw();
  }

  // Shows the latest update if it was throttled and ends the terminal line.
  // Called by the destructor too; repeated calls do nothing.
  void finish() {
    if (finished_) return;
    finished_ = true;
    if (updates_ > 0 && shown_step_ != step_) draw();
    if (terminal_ && shown_any_) std::fputc('\n', out_);
    std::fflush(out_);
  }

  bool on_terminal() const { return terminal_; }

 private:
  static std::string duration(double seconds) {
    const long s = std::lround(std::max(0.0, seconds));
    char text[32];
    if (s >= 3600)
      std::snprintf(text, sizeof text, "%ldh%02ldm%02lds", s / 3600, s / 60 % 60, s % 60);
    else if (s >= 60)
      std::snprintf(text, sizeof text, "%ldm%02lds", s / 60, s % 60);
    else
      std::snprintf(text, sizeof text, "%lds", s);
    return text;
  }

  void draw() {
    const double elapsed = std::chrono::duration<double>(now_ - first_time_).count();
    const int64_t done = step_ - first_step_;
    const std::string eta = done > 0 && elapsed > 0 ? duration(double(total_ - step_) * elapsed / double(done)) : "?";
    char loss[32] = "";
    if (!std::isnan(loss_)) std::snprintf(loss, sizeof loss, " loss %.4g", loss_);
    char stats[160];
    std::snprintf(stats, sizeof stats, "%lld/%lld%s %.1f img/s ETA %s", static_cast<long long>(step_),
                  static_cast<long long>(total_), loss, rate_, eta.c_str());
    std::string line;
    if (terminal_) {
      constexpr int width = 30;
      const int filled = int(std::clamp<int64_t>(step_, 0, total_) * width / total_);
      line = "\r[" + std::string(size_t(filled), '#') + std::string(size_t(width - filled), '.') + "] " + stats;
      const size_t length = line.size();
      if (length < drawn_length_) line.append(drawn_length_ - length, ' ');  // erase the longer previous line
      drawn_length_ = length;
    } else {
      line = std::string("step ") + stats + " elapsed " + duration(elapsed) + "\n";
    }
    std::fputs(line.c_str(), out_);
    std::fflush(out_);
    shown_any_ = true;
    shown_step_ = step_;
    shown_time_ = now_;
  }

  int64_t total_;
  std::FILE* out_;
  bool terminal_;
  bool finished_ = false, shown_any_ = false;
  int64_t updates_ = 0, first_step_ = 0, step_ = 0, shown_step_ = 0;
  double loss_ = 0, rate_ = 0;
  size_t drawn_length_ = 0;
  Clock::time_point first_time_{}, now_{}, shown_time_{};
};

}  // namespace haze::io
