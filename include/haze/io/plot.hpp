#pragma once
// Tiny raster plots with no text or plotting library: a loss curve
// (line_plot, optionally log-y) and 2-D toy samples (scatter_plot), drawn
// into an RGB Image for write_png. A frame, grid lines at "nice" ticks and
// tick labels in a built-in 3x5 pixel digit font; no title or legend.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "haze/core/error.hpp"
#include "haze/io/png.hpp"

namespace haze::io {

struct PlotSeries {
  std::vector<double> x{}, y{};
  std::array<uint8_t, 3> color{31, 119, 180};
};

struct ScatterSeries {
  std::vector<double> x{}, y{};
  std::array<uint8_t, 3> color{31, 119, 180};
  int radius = 1;  // dots are filled discs of this radius in pixels
};

struct PlotOptions {
  int width = 640;
  int height = 400;
  bool log_y = false;  // y on a log10 axis; points with y <= 0 are skipped
  // Fixed axis ranges (in data units); unset: the finite data's range plus 5%.
  std::optional<std::pair<double, double>> x_range{}, y_range{};
  std::string title{};  // not drawn: there is no text beyond digits
};

namespace detail {

using Rgb = std::array<uint8_t, 3>;

// 3x5 glyphs, one bit per pixel, rows top to bottom, 3 bits each (MSB left).
inline uint16_t glyph(char c) {
  switch (c) {
    case '0': return 0b111'101'101'101'111;
    case '1': return 0b010'110'010'010'111;
    case '2': return 0b111'001'111'100'111;
    case '3': return 0b111'001'111'001'111;
    case '4': return 0b101'101'111'001'001;
    case '5': return 0b111'100'111'001'111;
    case '6': return 0b111'100'111'101'111;
    case '7': return 0b111'001'001'001'001;
    case '8': return 0b111'101'111'101'111;
    case '9': return 0b111'101'111'001'111;
    case '.': return 0b000'000'000'000'010;
    case '-': return 0b000'000'111'000'000;
    case '+': return 0b000'010'111'010'000;
    case 'e': return 0b011'101'111'100'011;
    default: return 0;
  }
}

// The pixel canvas plus the data-to-pixel mapping of the plot area.
class Canvas {
 public:
  static constexpr int scale = 2;            // font pixels are 2x2
  static constexpr int advance = 4 * scale;  // per character
  static constexpr int left = 8 * advance + 8, right = 16, top = 12, bottom = 6 * scale + 14;

  Canvas(const PlotOptions& options, std::pair<double, double> xr, std::pair<double, double> yr)
      : image{options.width, options.height, 3, {}}, x_range(xr), y_range(yr), log_y(options.log_y) {
    image.pixels.assign(size_t(image.width) * size_t(image.height) * 3, 255);
    x0 = left;
    x1 = image.width - 1 - right;
    y0 = top;
    y1 = image.height - 1 - bottom;
  }

  Image image;
  std::pair<double, double> x_range, y_range;  // y_range in log10 units when log_y
  bool log_y;
  int x0, x1, y0, y1;  // plot area, inclusive

  void put(int x, int y, Rgb color, bool clip_to_area = true) {
    if (clip_to_area && (x < x0 || x > x1 || y < y0 || y > y1)) return;
    if (x < 0 || y < 0 || x >= image.width || y >= image.height) return;
    for (int c = 0; c < 3; ++c) image.at(x, y, c) = color[size_t(c)];
  }

  // Pixel coordinates of a data point (not rounded); nullopt when not drawable.
  std::optional<std::pair<double, double>> map(double x, double y) const {
    const double px = pixel_x(x), py = pixel_y(log_y ? (y > 0 ? std::log10(y) : NAN) : y);
    if (!std::isfinite(px) || !std::isfinite(py)) return std::nullopt;
    return std::pair(px, py);
  }
  double pixel_x(double x) const { return x0 + (x - x_range.first) / (x_range.second - x_range.first) * (x1 - x0); }
  double pixel_y(double axis_y) const {  // axis units: log10(y) on a log axis
    return y1 - (axis_y - y_range.first) / (y_range.second - y_range.first) * (y1 - y0);
  }

  void text(int x, int y, const std::string& s, Rgb color) {  // (x, y): top-left
    for (char ch : s) {
      const uint16_t bits = glyph(ch);
      for (int r = 0; r < 5; ++r)
        for (int c = 0; c < 3; ++c)
          if (bits & (1u << (14 - 3 * r - c)))
            for (int dy = 0; dy < scale; ++dy)
              for (int dx = 0; dx < scale; ++dx) put(x + c * scale + dx, y + r * scale + dy, color, false);
      x += advance;
    }
  }

  void disc(double cx, double cy, int radius, Rgb color) {
    const int x = int(std::lround(cx)), y = int(std::lround(cy));
    for (int dy = -radius; dy <= radius; ++dy)
      for (int dx = -radius; dx <= radius; ++dx)
        if (dx * dx + dy * dy <= radius * radius + radius) put(x + dx, y + dy, color);
  }

  // A 2-pixel-wide segment, clipped to the plot area first (Liang-Barsky),
  // then stepped with Bresenham.
  void line(std::pair<double, double> a, std::pair<double, double> b, Rgb color) {
    double t0 = 0, t1 = 1;
    const double dx = b.first - a.first, dy = b.second - a.second;
    const double p[4] = {-dx, dx, -dy, dy};
    const double q[4] = {a.first - x0, x1 - a.first, a.second - y0, y1 - a.second};
    for (int i = 0; i < 4; ++i) {
      if (p[i] == 0) {
        if (q[i] < 0) return;  // parallel to this edge and outside it
      } else if (const double t = q[i] / p[i]; p[i] < 0) {
        t0 = std::max(t0, t);
      } else {
        t1 = std::min(t1, t);
      }
    }
    if (t0 > t1) return;
    int xa = int(std::lround(a.first + t0 * dx)), ya = int(std::lround(a.second + t0 * dy));
    const int xb = int(std::lround(a.first + t1 * dx)), yb = int(std::lround(a.second + t1 * dy));
    const int sx = xa < xb ? 1 : -1, sy = ya < yb ? 1 : -1;
    const int ex = std::abs(xb - xa), ey = -std::abs(yb - ya);
    for (int error = ex + ey;;) {
      put(xa, ya, color), put(xa + 1, ya, color), put(xa, ya + 1, color), put(xa + 1, ya + 1, color);
      if (xa == xb && ya == yb) break;
      const int e2 = 2 * error;
      if (e2 >= ey) error += ey, xa += sx;
      if (e2 <= ex) error += ex, ya += sy;
    }
  }
};

// Range of the finite values (after log10 when asked), widened by 5% each
// side; a single value gets +-0.5; no values give [0, 1].
inline std::pair<double, double> axis_range(const std::vector<const std::vector<double>*>& columns, bool log) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto* column : columns)
    for (double v : *column) {
      if (log) v = v > 0 ? std::log10(v) : NAN;
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    }
  if (lo > hi) return {0.0, 1.0};
  if (hi - lo <= 1e-12 * std::max(1.0, std::abs(lo))) return {lo - 0.5, hi + 0.5};
  const double margin = 0.05 * (hi - lo);
  return {lo - margin, hi + margin};
}

// About five ticks at 1, 2 or 5 times a power of ten (integers when log).
inline std::vector<double> ticks(std::pair<double, double> range, bool log) {
  const double raw = (range.second - range.first) / 5;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {2.0, 5.0, 10.0})
    if (step < raw) step = m * magnitude;
  if (log) step = std::max(1.0, std::round(step));
  std::vector<double> out;
  for (double t = std::ceil(range.first / step) * step; t <= range.second && out.size() < 20; t += step)
    out.push_back(std::abs(t) < 1e-9 * step ? 0.0 : t);
  return out;
}

// Enough significant digits to tell neighbouring ticks apart (1000, 2000
// rather than 1e+03, 2e+03); log axes label the powers of ten themselves.
inline std::string tick_label(double value, bool log, const std::vector<double>& all) {
  char text[32];
  if (log) {
    std::snprintf(text, sizeof text, "%g", std::pow(10.0, value));
    return text;
  }
  double largest = 0;
  for (double t : all) largest = std::max(largest, std::abs(t));
  const double step = all.size() > 1 ? all[1] - all[0] : std::max(largest, 1.0);
  const int integer_digits = largest > 0 ? std::max(1, int(std::floor(std::log10(largest))) + 1) : 1;
  const int decimals = std::max(0, -int(std::floor(std::log10(step))));
  std::snprintf(text, sizeof text, "%.*g", std::clamp(integer_digits + decimals, 1, 7), value);
  return text;
}

inline void draw_axes(Canvas& canvas) {
  const Rgb grid{225, 225, 225}, ink{0, 0, 0};
  const std::vector<double> x_ticks = ticks(canvas.x_range, false), y_ticks = ticks(canvas.y_range, canvas.log_y);
  for (double t : x_ticks) {
    const int x = int(std::lround(canvas.pixel_x(t)));
    for (int y = canvas.y0; y <= canvas.y1; ++y) canvas.put(x, y, grid);
    const std::string label = tick_label(t, false, x_ticks);
    canvas.text(x - int(label.size()) * Canvas::advance / 2, canvas.y1 + 8, label, ink);
  }
  for (double t : y_ticks) {
    const int y = int(std::lround(canvas.pixel_y(t)));
    for (int x = canvas.x0; x <= canvas.x1; ++x) canvas.put(x, y, grid);
    const std::string label = tick_label(t, canvas.log_y, y_ticks);
    canvas.text(canvas.x0 - 6 - int(label.size()) * Canvas::advance, y - 5 * Canvas::scale / 2, label, ink);
  }
  for (int x = canvas.x0 - 1; x <= canvas.x1 + 1; ++x)
    canvas.put(x, canvas.y0 - 1, ink, false), canvas.put(x, canvas.y1 + 1, ink, false);
  for (int y = canvas.y0 - 1; y <= canvas.y1 + 1; ++y)
    canvas.put(canvas.x0 - 1, y, ink, false), canvas.put(canvas.x1 + 1, y, ink, false);
}

template <class Series>
Canvas make_canvas(const std::vector<Series>& series, const PlotOptions& options, const char* who) {
  HAZE_REQUIRE(
      options.width >= Canvas::left + Canvas::right + 32 && options.height >= Canvas::top + Canvas::bottom + 32, who,
      ": a ", options.width, "x", options.height, " plot is too small (at least ", Canvas::left + Canvas::right + 32,
      "x", Canvas::top + Canvas::bottom + 32, ")");
  std::vector<const std::vector<double>*> xs, ys;
  for (const Series& s : series) {
    HAZE_REQUIRE(s.x.size() == s.y.size(), who, ": a series has ", s.x.size(), " x values but ", s.y.size(),
                 " y values");
    xs.push_back(&s.x), ys.push_back(&s.y);
  }
  auto x_range = options.x_range ? *options.x_range : axis_range(xs, false);
  auto y_range = options.y_range ? *options.y_range : axis_range(ys, options.log_y);
  if (options.y_range && options.log_y) {
    HAZE_REQUIRE(y_range.first > 0, who, ": a log-y range must be positive, got [", y_range.first, ", ", y_range.second,
                 "]");
    y_range = {std::log10(y_range.first), std::log10(y_range.second)};
  }
  HAZE_REQUIRE(std::isfinite(x_range.first) && std::isfinite(x_range.second) && x_range.first < x_range.second &&
                   std::isfinite(y_range.first) && std::isfinite(y_range.second) && y_range.first < y_range.second,
               who, ": axis ranges must be finite and increasing, got x [", x_range.first, ", ", x_range.second,
               "], y [", y_range.first, ", ", y_range.second, "]");
  Canvas canvas(options, x_range, y_range);
  draw_axes(canvas);
  return canvas;
}

}  // namespace detail

// Polylines through each series' points, in order; a non-finite point (or
// y <= 0 on a log axis) breaks the line.
inline Image line_plot(const std::vector<PlotSeries>& series, PlotOptions options = {}) {
  detail::Canvas canvas = detail::make_canvas(series, options, "line_plot");
  for (const PlotSeries& s : series) {
    std::optional<std::pair<double, double>> previous;
    for (size_t i = 0; i < s.x.size(); ++i) {
      const auto point = canvas.map(s.x[i], s.y[i]);
      if (point && previous) canvas.line(*previous, *point, s.color);
      if (point && !previous) canvas.line(*point, *point, s.color);  // a lone point still shows
      previous = point;
    }
  }
  return std::move(canvas.image);
}

// Each finite point as a small disc; later series draw over earlier ones
// (draw the data first in gray, then the samples in a color).
inline Image scatter_plot(const std::vector<ScatterSeries>& series, PlotOptions options = {}) {
  detail::Canvas canvas = detail::make_canvas(series, options, "scatter_plot");
  for (const ScatterSeries& s : series) {
    HAZE_REQUIRE(s.radius >= 0 && s.radius <= 32, "scatter_plot: dot radius ", s.radius, " is outside 0..32");
    for (size_t i = 0; i < s.x.size(); ++i)
      if (const auto point = canvas.map(s.x[i], s.y[i])) canvas.disc(point->first, point->second, s.radius, s.color);
  }
  return std::move(canvas.image);
}

}  // namespace haze::io
