#pragma once
// HAZE_HD marks functions and functor call operators that run both on the
// host and inside device kernels. Under nvcc it expands to
// __host__ __device__; every other compiler sees plain C++.

#if defined(__CUDACC__)
#define HAZE_HD __host__ __device__
#else
#define HAZE_HD
#endif
