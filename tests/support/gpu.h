// GPU tests call SEQSCALE_REQUIRE_GPU() first: without a device they are reported as
// skipped (ctest shows "Skipped"), never as passed, and each such skip is counted
// (gpu_skips.h) so that test_main.cpp can say "<n> GPU tests skipped" after the run and,
// with SEQSCALE_GPU_REQUIRED=1 (a GPU session), exit with status 77 instead of 0.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "harness/gpu_runtime.h"
#include "tests/support/gpu_skips.h"

#define SEQSCALE_REQUIRE_GPU()                                         \
  do {                                                                 \
    std::string seqscale_why_;                                         \
    if (!::seqscale::gpu_available(&seqscale_why_)) {                  \
      ::seqscale::testing_support::note_gpu_skip(seqscale_why_);       \
      GTEST_SKIP() << seqscale_why_;                                   \
    }                                                                  \
  } while (0)
