// How many GPU tests of this binary skipped for want of a CUDA device, and the first
// reason given. SEQSCALE_REQUIRE_GPU() (gpu.h) counts; test_main.cpp reports after the run,
// so a binary that found no device is told apart from one whose GPU tests all passed, and
// SEQSCALE_GPU_REQUIRED=1 turns that case into exit status 77.
#pragma once
#include <string>

namespace seqscale::testing_support {

struct GpuSkips {
  int count = 0;
  std::string reason;  // gpu_available's text at the first skip, e.g. "no CUDA device"
};

// inline: one object shared by every translation unit of a test binary. GoogleTest runs
// the tests of a binary one after another, so no lock is needed.
inline GpuSkips gpu_skips;

inline void note_gpu_skip(const std::string& why) {
  if (gpu_skips.count++ == 0) gpu_skips.reason = why;
}

}  // namespace seqscale::testing_support
