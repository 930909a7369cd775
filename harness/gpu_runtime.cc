#include "harness/gpu_runtime.h"

#include <mutex>

namespace seqscale {
namespace {
GpuRuntime* g_runtime = nullptr;
}

void install_gpu_runtime(GpuRuntime* runtime) { g_runtime = runtime; }

GpuRuntimeInfo query_gpu_runtime() {
  static std::once_flag once;
  static GpuRuntimeInfo info;
  std::call_once(once, [] {
    if (!g_runtime) {
      info.unavailable_reason = "no CUDA device: seqscale was built without CUDA";
      return;
    }
    info = g_runtime->query();
    info.built_with_cuda = true;
  });
  return info;
}

bool gpu_available(std::string* why) {
  const GpuRuntimeInfo info = query_gpu_runtime();
  if (info.device_count > 0) return true;
  if (why) *why = info.unavailable_reason;
  return false;
}

std::string cuda_version_string(int version) {
  if (version <= 0) return "";
  return std::to_string(version / 1000) + "." + std::to_string((version % 1000) / 10);
}

}  // namespace seqscale
