// CUPTI_CHECK for CUPTI calls that must succeed. Includes <cupti.h> itself. (The kernel
// timer, harness/cuda/cupti_timer.cu, checks its calls by hand on purpose: a CUPTI failure
// there falls back to event timing instead of failing the point.)
#pragma once
#include <cupti.h>

#include "common/library_error.h"

#define CUPTI_CHECK(call)                                                  \
  do {                                                                     \
    CUptiResult seqscale_cr_ = (call);                                     \
    if (seqscale_cr_ != CUPTI_SUCCESS) {                                   \
      const char* seqscale_cs_ = nullptr;                                  \
      cuptiGetResultString(seqscale_cr_, &seqscale_cs_);                   \
      SEQSCALE_LIB_FAIL("CUPTI", call, seqscale_cs_ ? seqscale_cs_ : "?"); \
    }                                                                      \
  } while (0)
