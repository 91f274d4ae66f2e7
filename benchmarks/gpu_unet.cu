// gpu_unet built by nvcc for the CUDA system.
#include "gpu_unet.cpp"
