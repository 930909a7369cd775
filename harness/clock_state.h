// Clock and throttling state of a GPU, read through NVML loaded at run time (dlopen of the
// driver's libnvidia-ml.so.1), so the binary links and runs on machines without a driver.
#pragma once
#include <map>
#include <string>

namespace seqscale {

// Keys: sm_clock_mhz, mem_clock_mhz, temperature_c, power_w, clocks_event_reasons (the
// NVML bit mask: 0 = running at full clocks, else power/thermal/... caps). Empty when NVML
// or the device is unavailable.
std::map<std::string, double> read_gpu_clock_state(const std::string& pci_bus_id);

}  // namespace seqscale
