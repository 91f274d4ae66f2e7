// The Device parity tests compiled by nvcc for the CUDA system: the very same
// source as the OpenMP build, so a GPU runs exactly what CI checks on the host.
#include "../backend/test_device_parity.cpp"
