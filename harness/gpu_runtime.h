// What the plain-C++ core may ask of the GPU. seqscale_cuda installs the implementation at
// static-init time; in a build without CUDA (or on a machine without a device) the core
// sees "no CUDA device" and GPU work reports itself as skipped.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace seqscale {

struct GpuDeviceInfo {
  int index = 0;
  std::string name;
  int cc_major = 0;
  int cc_minor = 0;
  std::int64_t memory_bytes = 0;
  int sm_count = 0;
  int sm_clock_khz = 0;
  int mem_clock_khz = 0;
  std::string pci_bus_id;
};

struct GpuRuntimeInfo {
  bool built_with_cuda = false;
  int device_count = 0;
  std::string unavailable_reason;   // empty when device_count > 0
  int driver_version = 0;           // CUDA driver API version, e.g. 13000
  int runtime_version = 0;
  int nccl_version = 0;
  std::vector<GpuDeviceInfo> devices;
};

class GpuRuntime {
 public:
  virtual ~GpuRuntime() = default;
  virtual GpuRuntimeInfo query() = 0;
};

void install_gpu_runtime(GpuRuntime* runtime);  // called once by seqscale_cuda
GpuRuntimeInfo query_gpu_runtime();              // cached after the first call

// True when at least one device is usable; otherwise `why` says why (for GTEST_SKIP).
bool gpu_available(std::string* why = nullptr);

// "major.minor" from CUDA's integer version encoding (13000 -> "13.0").
std::string cuda_version_string(int version);

}  // namespace seqscale
