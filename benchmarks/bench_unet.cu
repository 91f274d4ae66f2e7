// bench_unet built by nvcc for the CUDA system.
#include "bench_unet.cpp"
