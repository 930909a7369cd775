// seqscale info: build features and the CUDA devices this process can see. On a machine
// without a GPU it says "no CUDA device" and exits 0.
#include <iostream>

#include <nlohmann/json.hpp>

#include "harness/cli/verb.h"
#include "harness/gpu_runtime.h"

namespace seqscale::cli {
namespace {

int run_info(const std::vector<std::string>& args) {
  po::options_description opts;
  opts.add_options()("json", "print one JSON object");
  po::variables_map vm;
  if (!parse_args("info", args, opts, vm, nullptr, "[--json]")) return 0;

  const GpuRuntimeInfo gpu = query_gpu_runtime();
  nlohmann::json j;
  j["version"] = SEQSCALE_VERSION;
  j["features"] = {{"cuda", SEQSCALE_HAVE_CUDA != 0}, {"mpi", SEQSCALE_HAVE_MPI != 0},
                   {"nccl", SEQSCALE_HAVE_NCCL != 0}, {"cupti", SEQSCALE_HAVE_CUPTI != 0}};
  j["cuda_driver"] = cuda_version_string(gpu.driver_version);
  j["cuda_runtime"] = cuda_version_string(gpu.runtime_version);
  j["nccl"] = gpu.nccl_version;
  j["device_count"] = gpu.device_count;
  j["devices"] = nlohmann::json::array();
  for (const auto& d : gpu.devices) {
    j["devices"].push_back({{"index", d.index}, {"name", d.name},
                            {"compute_capability", std::to_string(d.cc_major) + "." + std::to_string(d.cc_minor)},
                            {"memory_bytes", d.memory_bytes}, {"sm_count", d.sm_count},
                            {"pci_bus_id", d.pci_bus_id}});
  }
  if (gpu.device_count == 0) j["no_device_reason"] = gpu.unavailable_reason;

  if (vm.count("json")) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::cout << "seqscale " << SEQSCALE_VERSION << "\n";
  std::cout << "features: cuda=" << (SEQSCALE_HAVE_CUDA ? "on" : "off")
            << " mpi=" << (SEQSCALE_HAVE_MPI ? "on" : "off")
            << " nccl=" << (SEQSCALE_HAVE_NCCL ? "on" : "off")
            << " cupti=" << (SEQSCALE_HAVE_CUPTI ? "on" : "off") << "\n";
  if (gpu.device_count == 0) {
    std::cout << gpu.unavailable_reason << "\n";
    return 0;
  }
  std::cout << "CUDA driver " << j["cuda_driver"].get<std::string>() << ", runtime "
            << j["cuda_runtime"].get<std::string>() << "\n";
  for (const auto& d : gpu.devices) {
    std::cout << "  [" << d.index << "] " << d.name << "  sm_" << d.cc_major << d.cc_minor << "  "
              << d.memory_bytes / (1 << 20) << " MiB  " << d.sm_count << " SMs\n";
  }
  return 0;
}

}  // namespace
SEQSCALE_VERB("info", "build features and CUDA devices", run_info);
}  // namespace seqscale::cli
