// One checking macro per library: file, line, the call as text and the library's message.
// Include only from .cu files or files compiled into seqscale_cuda / seqscale_mpi.
#pragma once
#include <stdexcept>
#include <string>

namespace seqscale {

// Thrown by every *_CHECK; the harness turns it into a `failed` point with this text.
class LibraryError : public std::runtime_error {
 public:
  LibraryError(const char* library, const char* call, const char* file, int line, const std::string& msg)
      : std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + library + " " +
                           call + " failed: " + msg) {}
};

}  // namespace seqscale

#define SEQSCALE_LIB_FAIL(lib, call, msg) throw ::seqscale::LibraryError(lib, #call, __FILE__, __LINE__, msg)

#ifdef __CUDACC__
#include <cuda_runtime.h>
#define CUDA_CHECK(call)                                                   \
  do {                                                                     \
    cudaError_t seqscale_err_ = (call);                                    \
    if (seqscale_err_ != cudaSuccess)                                      \
      SEQSCALE_LIB_FAIL("CUDA", call, cudaGetErrorString(seqscale_err_));  \
  } while (0)
// After every kernel launch: launch-configuration errors surface here, not later.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
#endif

#if defined(CUBLAS_VERSION) || defined(CUBLAS_API_H_)
#define CUBLAS_CHECK(call)                                                          \
  do {                                                                              \
    cublasStatus_t seqscale_st_ = (call);                                           \
    if (seqscale_st_ != CUBLAS_STATUS_SUCCESS)                                      \
      SEQSCALE_LIB_FAIL("cuBLAS", call, cublasGetStatusString(seqscale_st_));       \
  } while (0)
#endif

#ifdef NCCL_H_
#define NCCL_CHECK(call)                                                  \
  do {                                                                    \
    ncclResult_t seqscale_nr_ = (call);                                   \
    if (seqscale_nr_ != ncclSuccess && seqscale_nr_ != ncclInProgress)    \
      SEQSCALE_LIB_FAIL("NCCL", call, ncclGetErrorString(seqscale_nr_));  \
  } while (0)
#endif

#ifdef MPI_VERSION
#define MPI_CHECK(call)                                                     \
  do {                                                                      \
    int seqscale_mr_ = (call);                                              \
    if (seqscale_mr_ != MPI_SUCCESS) {                                      \
      char seqscale_msg_[MPI_MAX_ERROR_STRING];                             \
      int seqscale_len_ = 0;                                                \
      MPI_Error_string(seqscale_mr_, seqscale_msg_, &seqscale_len_);        \
      SEQSCALE_LIB_FAIL("MPI", call, std::string(seqscale_msg_, seqscale_len_)); \
    }                                                                       \
  } while (0)
#endif

#ifdef CUPTI_API_VERSION
#define CUPTI_CHECK(call)                                              \
  do {                                                                 \
    CUptiResult seqscale_cr_ = (call);                                 \
    if (seqscale_cr_ != CUPTI_SUCCESS) {                               \
      const char* seqscale_cs_ = nullptr;                              \
      cuptiGetResultString(seqscale_cr_, &seqscale_cs_);               \
      SEQSCALE_LIB_FAIL("CUPTI", call, seqscale_cs_ ? seqscale_cs_ : "?"); \
    }                                                                  \
  } while (0)
#endif
