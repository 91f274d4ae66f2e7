#include <haze/core/shape.hpp>

#include "test_support.hpp"

using haze::Shape;
using haze::test::mentions;

TEST_CASE("Shape holds rank 1 to 4 extents and their product", "[shape]") {
  const Shape s1{7};
  CHECK(s1.rank() == 1);
  CHECK(s1.numel() == 7);
  const Shape s4{2, 3, 4, 5};
  CHECK(s4.rank() == 4);
  CHECK(s4.numel() == 120);
  CHECK(s4[0] == 2);
  CHECK(s4[3] == 5);
  CHECK(s4.str() == "[2, 3, 4, 5]");
  CHECK(Shape{2, 3} == Shape{2, 3});
  CHECK_FALSE(Shape{2, 3} == Shape{3, 2});
  CHECK_FALSE(Shape{6} == Shape{2, 3});
  CHECK(Shape{}.rank() == 0);
  CHECK(Shape{}.numel() == 0);
}

TEST_CASE("Shape rejects bad ranks, extents and axes with a clear message", "[shape][errors]") {
  CHECK_THROWS_AS((Shape{1, 2, 3, 4, 5}), haze::Error);
  CHECK_THROWS_WITH((Shape{1, 2, 3, 4, 5}), mentions("rank must be 1..4, got 5"));
  CHECK_THROWS_WITH((Shape{2, 0, 3}), mentions("every extent must be positive, got 0 in [2, 0, 3]"));
  CHECK_THROWS_WITH((Shape{-4}), mentions("got -4"));
  CHECK_THROWS_WITH((Shape{2, 3}[2]), mentions("axis 2 out of range for [2, 3]"));
  CHECK_THROWS_WITH((Shape{2, 3}[-1]), mentions("axis -1"));
}
