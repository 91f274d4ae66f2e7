// Every public entry point rejects bad input with a haze::Error that names
// the operation and the offending shapes or values.
#include <haze/haze.hpp>

#include "test_support.hpp"

using haze::Shape;
using haze::test::mentions;
using Tensor = haze::Tensor<float, haze::backend::Cpu>;

TEST_CASE("elementwise ops reject mismatched and empty tensors", "[errors][elementwise]") {
  const Tensor a = Tensor::zeros({2, 3});
  const Tensor b = Tensor::zeros({3, 2});
  Tensor out = Tensor::zeros({2, 3});
  Tensor empty;
  CHECK_THROWS_WITH(haze::ops::add(a, b, out), mentions("ops::add: shape mismatch: a is [2, 3] but b is [3, 2]"));
  CHECK_THROWS_WITH(haze::ops::sub(a, b, out), mentions("ops::sub: shape mismatch"));
  CHECK_THROWS_WITH(haze::ops::mul(a, b, out), mentions("ops::mul: shape mismatch"));
  Tensor wrong_out = Tensor::zeros({6});
  CHECK_THROWS_WITH(haze::ops::add(a, a, wrong_out),
                    mentions("ops::map: input 0 has shape [2, 3] but the output has shape [6]"));
  CHECK_THROWS_WITH(haze::ops::axpy(1.0f, a, wrong_out), mentions("ops::axpy: shape mismatch: x is [2, 3] but y is [6]"));
  CHECK_THROWS_WITH(haze::ops::add(a, empty, out), mentions("ops::add: the tensor is empty"));
  CHECK_THROWS_WITH(haze::ops::scale(empty, 2.0f), mentions("ops::scale: the tensor is empty"));
  CHECK_THROWS_WITH(haze::ops::fill(empty, 2.0f), mentions("ops::fill: the tensor is empty"));
  CHECK_THROWS_WITH(haze::ops::copy(a, wrong_out), mentions("ops::copy: shape mismatch: src is [2, 3] but dst is [6]"));
}

TEST_CASE("reductions reject views that do not fit", "[errors][reduce]") {
  const Tensor x = Tensor::zeros({2, 6, 4, 4});
  Tensor out = Tensor::zeros({6});
  Tensor empty;
  CHECK_THROWS_WITH(haze::ops::sum(empty), mentions("ops::sum: the tensor is empty"));
  CHECK_THROWS_WITH(haze::ops::sum_axes(x, 2, 6, 15, out), mentions("view [2, 6, 15] does not cover input [2, 6, 4, 4]"));
  CHECK_THROWS_WITH(haze::ops::sum_axes(x, 2, 3, 32, out), mentions("output [6] must hold 3 elements"));
  Tensor self = Tensor::zeros({4});
  Tensor self_view = self.reshape({4});
  CHECK_THROWS_WITH(haze::ops::sum_axes(self, 1, 4, 1, self_view), mentions("output aliases the input"));
  CHECK_THROWS_WITH(haze::ops::sum_rows(x, out), mentions("sum_rows: expects a rank-2 [rows, cols] input, got [2, 6, 4, 4]"));
  const Tensor m = Tensor::zeros({3, 5});
  Tensor three = Tensor::zeros({3});
  CHECK_THROWS_WITH(haze::ops::sum_columns(m, three), mentions("sum_columns: output must be [5] for input [3, 5], got [3]"));
  CHECK_THROWS_WITH(haze::ops::sum_per_channel(m, three), mentions("sum_per_channel: expects an NCHW input, got [3, 5]"));
  Tensor groups = Tensor::zeros({2, 4});
  CHECK_THROWS_WITH(haze::ops::sum_per_group(x, 4, groups), mentions("6 channels cannot be split into 4 groups"));
  CHECK_THROWS_WITH(haze::ops::sum_per_group(x, 3, groups), mentions("output must be [2, 3] for input [2, 6, 4, 4], got [2, 4]"));
}

TEST_CASE("matmul names the extents that disagree", "[errors][gemm]") {
  const Tensor a = Tensor::zeros({2, 3});
  const Tensor b = Tensor::zeros({4, 5});
  Tensor c = Tensor::zeros({2, 5});
  CHECK_THROWS_WITH(haze::ops::matmul(a, b, c), mentions("inner extents differ: op(A) is 2x3 (A [2, 3]) but op(B) is 4x5 (B [4, 5])"));
  CHECK_THROWS_WITH(haze::ops::matmul(a, b, c, haze::Transpose::Yes),
                    mentions("op(A) is 3x2 (A [2, 3], transposed)"));
  const Tensor b35 = Tensor::zeros({3, 5});
  Tensor c_wrong = Tensor::zeros({5, 2});
  CHECK_THROWS_WITH(haze::ops::matmul(a, b35, c_wrong), mentions("C must be [2, 5] for A [2, 3] and B [3, 5], got [5, 2]"));
  const Tensor a3 = Tensor::zeros({4, 2, 3});
  const Tensor b3 = Tensor::zeros({5, 3, 5});
  Tensor c3 = Tensor::zeros({4, 2, 5});
  CHECK_THROWS_WITH(haze::ops::matmul(a3, b3, c3), mentions("batch sizes differ: A [4, 2, 3] and B [5, 3, 5]"));
  CHECK_THROWS_WITH(haze::ops::matmul(a3, b35, c), mentions("C must be [4, 2, 5]"));
  const Tensor v = Tensor::zeros({3});
  CHECK_THROWS_WITH(haze::ops::matmul(v, b35, c), mentions("must be rank 2 or 3, got A [3]"));
  Tensor square = Tensor::zeros({3, 3});
  CHECK_THROWS_WITH(haze::ops::matmul(square, square, square), mentions("C aliases an input"));
}

TEST_CASE("randn and compare reject empty or mismatched tensors", "[errors]") {
  Tensor empty;
  haze::Generator gen{1};
  CHECK_THROWS_WITH(haze::randn(empty, gen), mentions("randn: the tensor is empty"));
  CHECK(gen.offset == 0);  // nothing was drawn
  CHECK_THROWS_WITH(haze::verify::compare(Tensor::zeros({2}), Tensor::zeros({3}), 0, 0),
                    mentions("verify::compare: shape [2] against reference [3]"));
}

TEST_CASE("haze::Error is a std::runtime_error that says where it was raised", "[errors]") {
  try {
    Shape bad{0};
    FAIL("no exception");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(e.what(), mentions("haze: Shape:") && mentions("shape.hpp:"));
  }
}
