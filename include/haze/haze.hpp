#pragma once
// Umbrella header: the core types, the Cpu backend and the generic ops. The
// Device backend is added when a device system is configured (nvcc, or
// THRUST_DEVICE_SYSTEM defined, as the haze::device_omp target does).

#include "haze/core/error.hpp"
#include "haze/core/generator.hpp"
#include "haze/core/shape.hpp"
#include "haze/core/tensor.hpp"

#include "haze/backend/cpu.hpp"
#if defined(__CUDACC__) || defined(THRUST_DEVICE_SYSTEM)
#include "haze/backend/device.hpp"
#endif

#include "haze/ops/elementwise.hpp"
#include "haze/ops/gemm.hpp"
#include "haze/ops/random.hpp"
#include "haze/ops/reduce.hpp"

#include "haze/verify/compare.hpp"
