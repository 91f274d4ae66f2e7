// The NCCL communicator test compiled by nvcc (HAZE_NCCL).
#include "../train/test_nccl.cpp"
