#include "harness/calibrate.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "model/roofline.h"
#include "workloads/config_error.h"

namespace seqscale {

std::string cluster_for_device(const std::string& device) {
  namespace fs = std::filesystem;
  std::string best;
  std::int64_t best_gpus = 1 << 30;
  for (const auto& e : fs::directory_iterator(workloads_dir() + "/clusters")) {
    if (e.path().extension() != ".json") continue;
    const ClusterSpec c = load_cluster(e.path().string());
    // Prefer the single-GPU description of a device: that is what a lent machine is.
    if (c.gpu == device && c.gpus_per_node * c.max_nodes < best_gpus) {
      best = c.name;
      best_gpus = c.gpus_per_node * c.max_nodes;
    }
  }
  if (best.empty()) throw ConfigError("no cluster in workloads/clusters has field 'gpu' = '" + device + "': pass --cluster");
  return best;
}

CalibrationFit fit_calibration(const std::vector<ResultsFile>& results, const ClusterSpec& cluster) {
  CalibrationFit fit;
  fit.calibration = default_calibration();
  std::map<std::string, std::vector<double>> compute, comm_nvlink, comm_ib;
  for (const auto& f : results) {
    if (f.run.device.starts_with("cpu:")) {
      throw ConfigError("field 'run.device' is '" + f.run.device +
                        "': calibration needs GPU measurements, not CPU reference timings");
    }
    if (f.run.device != cluster.gpu) {
      throw ConfigError("field 'run.device' is '" + f.run.device + "' but cluster '" + cluster.name +
                        "' has gpu '" + cluster.gpu + "'");
    }
    for (const auto& p : f.points) {
      if (p.status != PointStatus::kOk || p.source != "measured" || p.stats.median <= 0) continue;
      if (auto bus = p.metrics.find("busbw_GBps"); bus != p.metrics.end()) {
        const bool ib = p.metrics.count("crosses_nodes") && p.metrics.at("crosses_nodes") > 0;
        const double link = link_bytes_per_s(cluster, ib, 1);
        (ib ? comm_ib : comm_nvlink)[p.bench].push_back(bus->second * 1e9 / link);
        continue;
      }
      if (p.declared_flops <= 0 && p.declared_bytes <= 0) continue;
      DType dtype = DType::kBf16;
      if (p.params.contains("dtype") && p.params["dtype"].is_string()) parse_dtype(p.params["dtype"].get<std::string>(), &dtype);
      const double floor_s = compute_time_s(KernelCost{p.declared_flops, p.declared_bytes, 0}, dtype, cluster, 1.0);
      const double eff = floor_s / p.stats.median;
      compute[p.bench].push_back(eff);
      const double work = p.declared_flops > 0 ? p.declared_flops : p.declared_bytes;
      compute[p.bench + "@" + std::to_string(Calibration::size_class(work))].push_back(eff);
    }
  }
  auto fill = [&](const std::map<std::string, std::vector<double>>& by_key, auto&& store, const std::string& what) {
    for (const auto& [key, effs] : by_key) {
      const SampleStats s = summarize(effs);
      const double eff = std::clamp(s.median, 1e-4, 1.0);
      store(key, eff);
      fit.notes.push_back(what + " " + key + ": efficiency " + std::to_string(eff) + " (median of " +
                          std::to_string(s.n) + " points, range " + std::to_string(s.min) + ".." +
                          std::to_string(s.max) + ")");
    }
  };
  fill(compute, [&](const std::string& k, double e) { fit.calibration.compute[k] = e; }, "compute");
  fill(comm_nvlink, [&](const std::string& k, double e) { fit.calibration.comm["nvlink"][k] = e; }, "nvlink");
  fill(comm_ib, [&](const std::string& k, double e) { fit.calibration.comm["ib"][k] = e; }, "ib");
  fit.calibration.device = cluster.gpu;
  fit.calibration.source = "seqscale calibrate from " + std::to_string(results.size()) + " results file(s)";
  return fit;
}

}  // namespace seqscale
