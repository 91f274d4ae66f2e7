// PNG round trips, the image grid's layout and value mapping, and the plots'
// geometry (sizes, colors, orientation, clipping).
#include <cmath>
#include <haze/io/plot.hpp>
#include <haze/io/png.hpp>

#include "io/io_test_support.hpp"
#include "test_support.hpp"

using haze::io::Image;
using haze::test::mentions;
using haze::test::TempDir;

namespace {

Image pattern(int width, int height, int channels) {
  Image image{width, height, channels, std::vector<uint8_t>(size_t(width * height * channels))};
  for (size_t i = 0; i < image.pixels.size(); ++i) image.pixels[i] = uint8_t((i * 37 + i / 7) % 256);
  return image;
}

struct Pixels {
  int count = 0;
  double mean_x = 0, mean_y = 0;
};

// Where the pixels of one color are.
Pixels find_color(const Image& image, std::array<uint8_t, 3> color) {
  Pixels found;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x)
      if (image.at(x, y, 0) == color[0] && image.at(x, y, 1) == color[1] && image.at(x, y, 2) == color[2]) {
        ++found.count;
        found.mean_x += x;
        found.mean_y += y;
      }
  if (found.count) found.mean_x /= found.count, found.mean_y /= found.count;
  return found;
}

}  // namespace

TEST_CASE("write_png then read_png gives back the same pixels", "[io][png]") {
  TempDir dir;
  for (int channels : {1, 2, 3, 4}) {
    INFO(channels << " channels");
    const Image image = pattern(13, 7, channels);
    const auto path = dir / ("image" + std::to_string(channels) + ".png");
    haze::io::write_png(path, image);
    const Image back = haze::io::read_png(path);
    CHECK(back.width == 13);
    CHECK(back.height == 7);
    CHECK(back.channels == channels);
    CHECK(back.pixels == image.pixels);
  }
  CHECK(dir.entries().size() == 4);  // no temporaries left
}

TEST_CASE("PNG errors name the file and what was wrong", "[io][png]") {
  TempDir dir;
  Image wrong = pattern(4, 4, 3);
  wrong.pixels.pop_back();
  CHECK_THROWS_WITH(
      haze::io::write_png(dir / "a.png", wrong),
      mentions("write_png '" + (dir / "a.png").string() + "': a 4x4x3 image needs 48 bytes of pixels, got 47"));
  CHECK_THROWS_WITH(haze::io::write_png(dir / "a.png", Image{0, 4, 1, {}}),
                    mentions("image size 0x4 must be positive"));
  CHECK_THROWS_WITH(haze::io::write_png(dir / "a.png", Image{1, 1, 5, std::vector<uint8_t>(5)}),
                    mentions("5 channels; expected 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA)"));
  CHECK_THROWS_WITH(haze::io::write_png(dir / "no" / "a.png", pattern(2, 2, 1)),
                    mentions((dir / "no" / "a.png").string()) && mentions("No such file or directory"));

  haze::test::write_raw(dir / "text.png", haze::test::as_bytes("not a png at all"));
  CHECK_THROWS_WITH(haze::io::read_png(dir / "text.png"),
                    mentions("decode_png: '" + (dir / "text.png").string() + "' is not a PNG file"));
  haze::io::write_png(dir / "whole.png", pattern(64, 64, 3));
  std::vector<std::byte> bytes = haze::io::read_file(dir / "whole.png");
  bytes.resize(bytes.size() / 2);
  haze::test::write_raw(dir / "cut.png", bytes);
  CHECK_THROWS_WITH(haze::io::read_png(dir / "cut.png"),
                    mentions("decode_png: '" + (dir / "cut.png").string() + "': the file is truncated"));
}

TEST_CASE("to_byte maps [-1, 1] to 0..255, rounding half away from zero", "[io][png]") {
  using haze::io::to_byte;
  CHECK(to_byte(-1.0f) == 0);
  CHECK(to_byte(1.0f) == 255);
  CHECK(to_byte(0.0f) == 128);  // 127.5 rounds up
  CHECK(to_byte(0.5f) == 191);  // 191.25
  CHECK(to_byte(-0.5f) == 64);  // 63.75
  CHECK(to_byte(-3.0f) == 0);
  CHECK(to_byte(7.0f) == 255);
  CHECK(to_byte(std::nanf("")) == 0);
  CHECK(to_byte(-INFINITY) == 0);
  CHECK(to_byte(INFINITY) == 255);
}

TEST_CASE("image_grid tiles images row-major with padding", "[io][png]") {
  // 5 gray 2x3 images in 3 columns, 1 pixel of padding: a 2-row grid of
  // 3*(3+1)+1 = 13 by 2*(2+1)+1 = 7 pixels. Image i is filled with the value
  // that maps to byte 40*(i+1), plus its pixel index so positions are checked.
  const int n = 5, h = 2, w = 3;
  std::vector<float> images(size_t(n * h * w));
  const auto value = [&](int i, int y, int x) { return 40 * (i + 1) + y * w + x; };  // a byte
  for (int i = 0; i < n; ++i)
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) images[size_t((i * h + y) * w + x)] = float(value(i, y, x)) / 127.5f - 1.0f;

  const Image grid = haze::io::image_grid(images, n, 1, h, w, 3, 1);
  REQUIRE(grid.width == 13);
  REQUIRE(grid.height == 7);
  REQUIRE(grid.channels == 1);
  std::vector<bool> covered(grid.pixels.size(), false);
  for (int i = 0; i < n; ++i) {
    const int left = 1 + (i % 3) * 4, top = 1 + (i / 3) * 3;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        INFO("image " << i << " pixel (" << x << ", " << y << ")");
        CHECK(int(grid.at(left + x, top + y, 0)) == value(i, y, x));
        covered[size_t((top + y) * grid.width + left + x)] = true;
      }
  }
  for (size_t p = 0; p < covered.size(); ++p)
    if (!covered[p]) CHECK(int(grid.pixels[p]) == 0);  // padding and the empty sixth slot are black

  // RGB: planar (C, H, W) input becomes interleaved pixels.
  const std::vector<float> rgb{-1, -1, 1, 1, /*G*/ 1, -1, -1, 1, /*B*/ 0, 0, 0, 0};  // one 2x2 image
  const Image color = haze::io::image_grid(rgb, 1, 3, 2, 2, 8, 0);                   // columns clamp to n
  REQUIRE(color.width == 2);
  REQUIRE(color.height == 2);
  CHECK(color.pixels == std::vector<uint8_t>{0, 255, 128, 0, 0, 128, 255, 0, 128, 255, 255, 128});

  CHECK_THROWS_WITH(haze::io::image_grid(rgb, 2, 3, 2, 2, 2), mentions("2 images of 3x2x2 need 24 values, got 12"));
  CHECK_THROWS_WITH(haze::io::image_grid(rgb, 1, 4, 1, 3, 2), mentions("4 channels; expected 1 (gray) or 3 (RGB)"));
}

TEST_CASE("scatter_plot puts points where their coordinates say", "[io][plot]") {
  const std::array<uint8_t, 3> red{220, 20, 20}, blue{20, 20, 220}, green{20, 200, 20}, gray{150, 150, 150};
  haze::io::PlotOptions options;
  options.width = 300;
  options.height = 200;
  options.x_range = {{-1.0, 2.0}};
  options.y_range = {{-1.0, 2.0}};
  const Image image = haze::io::scatter_plot(
      {{{-0.5, 0.5, 1.5}, {0.5, 0.5, 0.5}, gray, 1},
       {{0.0}, {0.0}, red, 2},
       {{1.0}, {1.0}, blue, 2},
       {{10.0, NAN, 0.5}, {10.0, 0.5, INFINITY}, green, 2}},  // outside the range or not finite: not drawn
      options);
  REQUIRE(image.width == 300);
  REQUIRE(image.height == 200);
  REQUIRE(image.channels == 3);
  const Pixels r = find_color(image, red), b = find_color(image, blue);
  CHECK(r.count == 21);  // a radius-2 disc: dx^2 + dy^2 <= r^2 + r
  CHECK(b.count == 21);
  CHECK(find_color(image, green).count == 0);
  CHECK(find_color(image, gray).count > 0);
  CHECK(b.mean_x > r.mean_x + 50);  // x grows to the right
  CHECK(b.mean_y < r.mean_y - 30);  // y grows upwards
  // The same distance in data units is the same distance in pixels.
  const Pixels g = find_color(image, gray);
  CHECK(std::abs(g.mean_x - (r.mean_x + b.mean_x) / 2) < 1.0);
}

TEST_CASE("line_plot draws loss curves, on a log axis too", "[io][plot]") {
  const std::array<uint8_t, 3> red{220, 20, 20}, blue{20, 20, 220};
  std::vector<double> steps, loss, noisy;
  for (int i = 0; i < 200; ++i) {
    steps.push_back(i);
    loss.push_back(std::exp(-0.03 * i));
    noisy.push_back(i % 50 == 7 ? NAN : 0.5 * std::exp(-0.02 * i));
  }
  noisy[3] = -1.0;  // not drawable on a log axis: a gap
  haze::io::PlotOptions options;
  options.width = 400;
  options.height = 250;
  options.log_y = true;
  const Image image = haze::io::line_plot({{steps, loss, red}, {steps, noisy, blue}}, options);
  REQUIRE(image.width == 400);
  REQUIRE(image.height == 250);
  const Pixels r = find_color(image, red), b = find_color(image, blue);
  CHECK(r.count > 200);
  CHECK(b.count > 200);

  // The decreasing curve starts high on the left and ends low on the right.
  int first_x = image.width, first_y = 0, last_x = -1, last_y = 0;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x)
      if (image.at(x, y, 0) == red[0] && image.at(x, y, 1) == red[1] && image.at(x, y, 2) == red[2]) {
        if (x < first_x) first_x = x, first_y = y;
        if (x > last_x) last_x = x, last_y = y;
      }
  CHECK(last_x - first_x > 250);
  CHECK(last_y - first_y > 120);

  options.log_y = false;
  const Image linear = haze::io::line_plot({{steps, loss, red}}, options);
  CHECK(find_color(linear, red).count > 200);
  // Frame pixels are black, the background white.
  CHECK(find_color(linear, {0, 0, 0}).count > 2 * (400 + 250) - 400);
  CHECK(find_color(linear, {255, 255, 255}).count > 400 * 250 / 2);

  CHECK_THROWS_WITH(haze::io::line_plot({{{1, 2}, {1}, red}}, options),
                    mentions("a series has 2 x values but 1 y values"));
  options.width = 50;
  CHECK_THROWS_WITH(haze::io::line_plot({}, options), mentions("line_plot: a 50x250 plot is too small"));
  options.width = 400;
  options.y_range = {{0.0, 1.0}};
  options.log_y = true;
  CHECK_THROWS_WITH(haze::io::line_plot({}, options), mentions("a log-y range must be positive"));
}
