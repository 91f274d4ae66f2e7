// The nn parity tests compiled by nvcc for the CUDA system.
#include "../nn/test_nn_parity.cpp"
