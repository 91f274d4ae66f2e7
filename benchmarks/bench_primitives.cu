// bench_primitives built by nvcc for the CUDA system.
#include "bench_primitives.cpp"
