#pragma once
// Umbrella header: the core types, the Cpu backend, the generic ops, the
// diffusion math, the samplers and the training loop (the layers are in
// haze/nn/, the files and images in haze/io/). The
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
#include "haze/backend/tf32.hpp"

#include "haze/ops/combine.hpp"
#include "haze/ops/elementwise.hpp"
#include "haze/ops/gemm.hpp"
#include "haze/ops/random.hpp"
#include "haze/ops/reduce.hpp"

#include "haze/diffusion/forward_process.hpp"
#include "haze/diffusion/loss.hpp"
#include "haze/diffusion/noise_schedule.hpp"
#include "haze/diffusion/parameterization.hpp"
#include "haze/diffusion/schedule.hpp"

#include "haze/sample/by_name.hpp"
#include "haze/sample/ddim.hpp"
#include "haze/sample/ddpm.hpp"
#include "haze/sample/dpm_solver.hpp"
#include "haze/sample/euler.hpp"
#include "haze/sample/guidance.hpp"
#include "haze/sample/heun.hpp"
#include "haze/sample/sde.hpp"
#include "haze/sample/timesteps.hpp"

#include "haze/train/adamw.hpp"
#include "haze/train/dataset.hpp"
#include "haze/train/ema.hpp"
#include "haze/train/grad_clip.hpp"
#include "haze/train/lr_schedule.hpp"
#include "haze/train/trainer.hpp"

#include "haze/verify/compare.hpp"
