// The train parity tests compiled by nvcc for the CUDA system.
#include "../train/test_train_parity.cpp"
