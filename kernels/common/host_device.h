// SEQSCALE_HOST_DEVICE marks a small math function that one header gives both the CUDA
// kernel and its fp32 CPU backend (compiled by nvcc: __host__ __device__; by the C++
// compiler: nothing), so the CPU path evaluates the kernel's own fp32 formula.
#pragma once

#if defined(__CUDACC__)
#define SEQSCALE_HOST_DEVICE __host__ __device__
#else
#define SEQSCALE_HOST_DEVICE
#endif
