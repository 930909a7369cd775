// Installs the CUDA implementation of GpuRuntime: device count, names, versions. Never
// throws: a machine without a driver or device reports the reason instead.
#include <cuda_runtime.h>
#if SEQSCALE_HAVE_NCCL
#include <nccl.h>
#endif

#include <nvtx3/nvToolsExt.h>

#include "harness/gpu_runtime.h"
#include "harness/nvtx.h"

namespace seqscale {
namespace {

class CudaRuntime final : public GpuRuntime {
 public:
  GpuRuntimeInfo query() override {
    GpuRuntimeInfo info;
    cudaDriverGetVersion(&info.driver_version);
    cudaRuntimeGetVersion(&info.runtime_version);
#if SEQSCALE_HAVE_NCCL
    ncclGetVersion(&info.nccl_version);
#endif
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
      info.unavailable_reason = std::string("no CUDA device: ") +
                                (err != cudaSuccess ? cudaGetErrorString(err) : "device count is 0");
      cudaGetLastError();  // clear the sticky-free error so later calls start clean
      return info;
    }
    info.device_count = count;
    for (int i = 0; i < count; ++i) {
      cudaDeviceProp p{};
      if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
      GpuDeviceInfo d;
      d.index = i;
      d.name = p.name;
      d.cc_major = p.major;
      d.cc_minor = p.minor;
      d.memory_bytes = static_cast<std::int64_t>(p.totalGlobalMem);
      d.sm_count = p.multiProcessorCount;
      cudaDeviceGetAttribute(&d.sm_clock_khz, cudaDevAttrClockRate, i);
      cudaDeviceGetAttribute(&d.mem_clock_khz, cudaDevAttrMemoryClockRate, i);
      char bus[32] = {};
      if (cudaDeviceGetPCIBusId(bus, sizeof(bus), i) == cudaSuccess) d.pci_bus_id = bus;
      info.devices.push_back(d);
    }
    return info;
  }
};

const bool installed = [] {
  static CudaRuntime runtime;
  install_gpu_runtime(&runtime);
  install_nvtx_hooks([](const char* name) { nvtxRangePushA(name); }, [] { nvtxRangePop(); });
  return true;
}();

}  // namespace
}  // namespace seqscale
