// parity_report built by nvcc for the CUDA system.
#include "parity_report.cpp"
