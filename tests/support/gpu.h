// GPU tests call SEQSCALE_REQUIRE_GPU() first: without a device they are reported as
// skipped (ctest shows "Skipped"), never as passed.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "harness/gpu_runtime.h"

#define SEQSCALE_REQUIRE_GPU()                                  \
  do {                                                          \
    std::string seqscale_why_;                                  \
    if (!::seqscale::gpu_available(&seqscale_why_)) GTEST_SKIP() << seqscale_why_; \
  } while (0)
