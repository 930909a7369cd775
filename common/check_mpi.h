// MPI_CHECK for MPI calls. Includes <mpi.h> itself, so it works in any include order; only
// sources that link MPI (seqscale_mpi, MPI tests) can include it.
#pragma once
#include <mpi.h>

#include <string>

#include "common/library_error.h"

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
