// The diffusion parity tests compiled by nvcc for the CUDA system.
#include "../diffusion/test_diffusion_parity.cpp"
