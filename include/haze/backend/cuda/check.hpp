#pragma once
// Turn CUDA runtime and cuBLAS status codes into haze::Error with the call
// that failed. Only included by nvcc builds of the device backend.

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "haze/core/error.hpp"

#define HAZE_CUDA_CHECK(call)                                                                  \
  do {                                                                                         \
    const cudaError_t haze_status_ = (call);                                                   \
    HAZE_REQUIRE(haze_status_ == cudaSuccess, "CUDA call ", #call, " failed: ",                \
                 cudaGetErrorName(haze_status_), " (", cudaGetErrorString(haze_status_), ")"); \
  } while (false)

#define HAZE_CUBLAS_CHECK(call)                                                                          \
  do {                                                                                                   \
    const cublasStatus_t haze_status_ = (call);                                                          \
    HAZE_REQUIRE(haze_status_ == CUBLAS_STATUS_SUCCESS, "cuBLAS call ", #call, " failed with status ", \
                 static_cast<int>(haze_status_));                                                        \
  } while (false)
