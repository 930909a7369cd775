#include "harness/clock_state.h"

#include <dlfcn.h>

namespace seqscale {
namespace {

// The few NVML entry points used, declared by hand (stable C ABI; no nvml.h here).
using NvmlDevice = void*;
struct Nvml {
  int (*init)() = nullptr;
  int (*by_pci)(const char*, NvmlDevice*) = nullptr;
  int (*clock)(NvmlDevice, int, unsigned*) = nullptr;
  int (*reasons)(NvmlDevice, unsigned long long*) = nullptr;
  int (*temperature)(NvmlDevice, int, unsigned*) = nullptr;
  int (*power)(NvmlDevice, unsigned*) = nullptr;
  bool ok = false;
};

const Nvml& nvml() {
  static Nvml n = [] {
    Nvml x;
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return x;
    x.init = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlInit_v2"));
    x.by_pci = reinterpret_cast<int (*)(const char*, NvmlDevice*)>(dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2"));
    x.clock = reinterpret_cast<int (*)(NvmlDevice, int, unsigned*)>(dlsym(lib, "nvmlDeviceGetClockInfo"));
    x.reasons = reinterpret_cast<int (*)(NvmlDevice, unsigned long long*)>(
        dlsym(lib, "nvmlDeviceGetCurrentClocksEventReasons"));
    if (!x.reasons) {
      x.reasons = reinterpret_cast<int (*)(NvmlDevice, unsigned long long*)>(
          dlsym(lib, "nvmlDeviceGetCurrentClocksThrottleReasons"));
    }
    x.temperature = reinterpret_cast<int (*)(NvmlDevice, int, unsigned*)>(dlsym(lib, "nvmlDeviceGetTemperature"));
    x.power = reinterpret_cast<int (*)(NvmlDevice, unsigned*)>(dlsym(lib, "nvmlDeviceGetPowerUsage"));
    x.ok = x.init && x.by_pci && x.init() == 0;
    return x;
  }();
  return n;
}

constexpr int kClockSm = 1, kClockMem = 2, kTemperatureGpu = 0;

}  // namespace

std::map<std::string, double> read_gpu_clock_state(const std::string& pci_bus_id) {
  std::map<std::string, double> out;
  const Nvml& n = nvml();
  NvmlDevice dev = nullptr;
  if (!n.ok || pci_bus_id.empty() || n.by_pci(pci_bus_id.c_str(), &dev) != 0) return out;
  unsigned v = 0;
  unsigned long long mask = 0;
  if (n.clock && n.clock(dev, kClockSm, &v) == 0) out["sm_clock_mhz"] = v;
  if (n.clock && n.clock(dev, kClockMem, &v) == 0) out["mem_clock_mhz"] = v;
  if (n.temperature && n.temperature(dev, kTemperatureGpu, &v) == 0) out["temperature_c"] = v;
  if (n.power && n.power(dev, &v) == 0) out["power_w"] = v / 1000.0;
  if (n.reasons && n.reasons(dev, &mask) == 0) out["clocks_event_reasons"] = static_cast<double>(mask);
  return out;
}

}  // namespace seqscale
