// main() of every test binary: runs the tests, removes this process's scratch folders,
// and reports GPU tests that skipped for want of a device (gpu_skips.h), so that "no
// device" cannot read as "all passed":
//   seqscale-tests: 12 GPU tests skipped: no CUDA device (<reason>)
// With SEQSCALE_GPU_REQUIRED=1 (set by a GPU session, where a missing device is a fault)
// such a run exits with 77 when the tests themselves passed; otherwise the exit status is
// GoogleTest's, so ctest on a machine without a GPU still passes and shows them as Skipped.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "tests/support/gpu_skips.h"

namespace {

constexpr int kNoGpuExitStatus = 77;  // the automake/ctest convention for "could not run"

// gpu_available's reasons start "no CUDA device: "; the report line says that once.
std::string without_prefix(const std::string& reason) {
  const std::string prefix = "no CUDA device: ";
  return reason.rfind(prefix, 0) == 0 ? reason.substr(prefix.size()) : reason;
}

bool gpu_required() {
  const char* v = std::getenv("SEQSCALE_GPU_REQUIRED");
  return v != nullptr && std::string(v) == "1";
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  int rc = RUN_ALL_TESTS();
  // Tests make scratch folders named seqscale_<what>_<pid>[_...] in the temp directory.
  const std::string mark = "_" + std::to_string(::getpid());
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("seqscale_", 0) == 0 && name.find(mark) != std::string::npos) std::filesystem::remove_all(e.path(), ec);
  }
  const auto& skips = seqscale::testing_support::gpu_skips;
  if (skips.count > 0) {
    std::printf("seqscale-tests: %d GPU tests skipped: no CUDA device (%s)\n", skips.count,
                without_prefix(skips.reason).c_str());
    if (gpu_required()) {
      std::printf("seqscale-tests: SEQSCALE_GPU_REQUIRED=1 but no CUDA device\n");
      if (rc == 0) rc = kNoGpuExitStatus;
    }
    std::fflush(stdout);
  }
  return rc;
}
