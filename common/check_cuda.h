// CUDA_CHECK for CUDA runtime calls. Includes <cuda_runtime.h> itself, so it works in any
// include order; only sources that link the CUDA runtime (seqscale_cuda, GPU tests) can
// include it.
#pragma once
#include <cuda_runtime.h>

#include "common/library_error.h"

#define CUDA_CHECK(call)                                                   \
  do {                                                                     \
    cudaError_t seqscale_err_ = (call);                                    \
    if (seqscale_err_ != cudaSuccess)                                      \
      SEQSCALE_LIB_FAIL("CUDA", call, cudaGetErrorString(seqscale_err_));  \
  } while (0)
// After every kernel launch: launch-configuration errors surface here, not later.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
