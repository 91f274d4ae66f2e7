#pragma once
// Matrix products on tensors: C = alpha op(A) op(B) + beta C, row-major.
//   A [M, K]     B [K, N]     C [M, N]       one product
//   A [b, M, K]  B [b, K, N]  C [b, M, N]    batched
//   A [M, K]     B [b, K, N]  C [b, M, N]    A shared by every batch member
//   A [b, M, K]  B [K, N]     C [b, M, N]    B shared
// (with op = transpose, the stored A is [.., K, M] and B is [.., N, K]).
// The shared-operand forms are the convolution GEMMs: one weight matrix
// against a batch of im2col buffers.

#include <cstdint>

#include "haze/core/error.hpp"
#include "haze/core/tensor.hpp"

namespace haze::ops {

template <Real T, Backend B>
void matmul(const Tensor<T, B>& a, const Tensor<T, B>& b, Tensor<T, B>& c, Transpose trans_a = Transpose::No,
            Transpose trans_b = Transpose::No, T alpha = T(1), T beta = T(0)) {
  a.require_nonempty("ops::matmul (A)");
  b.require_nonempty("ops::matmul (B)");
  c.require_nonempty("ops::matmul (C)");
  HAZE_REQUIRE((a.rank() == 2 || a.rank() == 3) && (b.rank() == 2 || b.rank() == 3),
               "ops::matmul: A and B must be rank 2 or 3, got A ", a.shape(), " and B ", b.shape());
  HAZE_REQUIRE(!c.shares_storage_with(a) && !c.shares_storage_with(b), "ops::matmul: C aliases an input");

  const bool batched = a.rank() == 3 || b.rank() == 3;
  const int64_t batch = a.rank() == 3 ? a.dim(0) : (b.rank() == 3 ? b.dim(0) : 1);
  HAZE_REQUIRE(a.rank() == 2 || b.rank() == 2 || a.dim(0) == b.dim(0), "ops::matmul: batch sizes differ: A ",
               a.shape(), " and B ", b.shape());

  const int ra = a.rank(), rb = b.rank();
  const bool ta = trans_a == Transpose::Yes, tb = trans_b == Transpose::Yes;
  const int64_t a_rows = a.dim(ra - 2), a_cols = a.dim(ra - 1);
  const int64_t b_rows = b.dim(rb - 2), b_cols = b.dim(rb - 1);
  const int64_t M = ta ? a_cols : a_rows, K = ta ? a_rows : a_cols;
  const int64_t K2 = tb ? b_cols : b_rows, N = tb ? b_rows : b_cols;
  HAZE_REQUIRE(K == K2, "ops::matmul: inner extents differ: op(A) is ", M, "x", K, " (A ", a.shape(),
               ta ? ", transposed" : "", ") but op(B) is ", K2, "x", N, " (B ", b.shape(),
               tb ? ", transposed" : "", ")");
  const Shape expected = batched ? Shape{batch, M, N} : Shape{M, N};
  HAZE_REQUIRE(c.shape() == expected, "ops::matmul: C must be ", expected, " for A ", a.shape(), " and B ",
               b.shape(), ", got ", c.shape());

  const int64_t stride_a = ra == 3 ? a_rows * a_cols : 0;
  const int64_t stride_b = rb == 3 ? b_rows * b_cols : 0;
  B::gemm(trans_a, trans_b, M, N, K, alpha, a.data(), a_cols, stride_a, b.data(), b_cols, stride_b, beta,
          c.data(), N, M * N, batch);
}

}  // namespace haze::ops
