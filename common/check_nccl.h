// NCCL_CHECK for NCCL calls. Includes <nccl.h> itself, so it works in any include order.
// ncclInProgress is not an error: non-blocking communicators return it while they work.
#pragma once
#include <nccl.h>

#include "common/library_error.h"

#define NCCL_CHECK(call)                                                  \
  do {                                                                    \
    ncclResult_t seqscale_nr_ = (call);                                   \
    if (seqscale_nr_ != ncclSuccess && seqscale_nr_ != ncclInProgress)    \
      SEQSCALE_LIB_FAIL("NCCL", call, ncclGetErrorString(seqscale_nr_));  \
  } while (0)
