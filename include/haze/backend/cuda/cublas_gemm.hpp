#pragma once
// Row-major strided-batched GEMM on cuBLAS. cuBLAS is column-major, and a
// row-major M x N matrix is the column-major N x M transpose, so
// C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T: swap the operands and
// the M/N extents, keep the transpose flags.

#include <climits>
#include <cstdint>
#include <type_traits>

#include "haze/backend/cuda/check.hpp"
#include "haze/backend/cuda/stream.hpp"
#include "haze/backend/tf32.hpp"
#include "haze/core/backend_concept.hpp"

namespace haze::backend::cuda {

inline cublasHandle_t cublas_handle() {
  static cublasHandle_t handle = [] {
    cublasHandle_t h = nullptr;
    HAZE_CUBLAS_CHECK(cublasCreate(&h));
    HAZE_CUBLAS_CHECK(cublasSetStream(h, stream()));
    return h;
  }();
  return handle;
}

template <class T>
void gemm_strided_batched(Transpose trans_a, Transpose trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                          const T* A, int64_t lda, int64_t stride_a, const T* B, int64_t ldb, int64_t stride_b,
                          T beta, T* C, int64_t ldc, int64_t stride_c, int64_t batch) {
  HAZE_REQUIRE(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && batch <= INT_MAX, "gemm: extents M=", M,
               " N=", N, " K=", K, " batch=", batch, " exceed cuBLAS's 32-bit limits");
  // TF32 only where allowed (backend::allow_tf32); cuBLAS's default math keeps float's mantissa.
  HAZE_CUBLAS_CHECK(cublasSetMathMode(cublas_handle(), std::is_same_v<T, float> && tf32_allowed()
                                                           ? CUBLAS_TF32_TENSOR_OP_MATH
                                                           : CUBLAS_DEFAULT_MATH));
  const cublasOperation_t op_a = trans_a == Transpose::Yes ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b == Transpose::Yes ? CUBLAS_OP_T : CUBLAS_OP_N;
  if constexpr (std::is_same_v<T, float>) {
    HAZE_CUBLAS_CHECK(cublasSgemmStridedBatched(cublas_handle(), op_b, op_a, int(N), int(M), int(K), &alpha, B,
                                                int(ldb), stride_b, A, int(lda), stride_a, &beta, C, int(ldc),
                                                stride_c, int(batch)));
  } else {
    HAZE_CUBLAS_CHECK(cublasDgemmStridedBatched(cublas_handle(), op_b, op_a, int(N), int(M), int(K), &alpha, B,
                                                int(ldb), stride_b, A, int(lda), stride_a, &beta, C, int(ldc),
                                                stride_c, int(batch)));
  }
}

}  // namespace haze::backend::cuda
