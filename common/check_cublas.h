// CUBLAS_CHECK for cuBLAS calls and CUBLASLT_CHECK for cuBLASLt calls (same status type,
// but the message names the library that failed). Includes the library headers itself.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>

#include "common/library_error.h"

#define CUBLAS_CHECK(call)                                                          \
  do {                                                                              \
    cublasStatus_t seqscale_st_ = (call);                                           \
    if (seqscale_st_ != CUBLAS_STATUS_SUCCESS)                                      \
      SEQSCALE_LIB_FAIL("cuBLAS", call, cublasGetStatusString(seqscale_st_));       \
  } while (0)

#define CUBLASLT_CHECK(call)                                                        \
  do {                                                                              \
    cublasStatus_t seqscale_lt_ = (call);                                           \
    if (seqscale_lt_ != CUBLAS_STATUS_SUCCESS)                                      \
      SEQSCALE_LIB_FAIL("cuBLASLt", call, cublasGetStatusString(seqscale_lt_));     \
  } while (0)
