#include "harness/calibrate.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "harness/bench/stats.h"
#include "model/roofline.h"
#include "workloads/config_error.h"
#include "workloads/op_kinds.h"

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

namespace {

// The efficiencies measured for one calibration key, and the benchmarks they came from.
struct Measured {
  std::vector<double> efficiencies;
  std::set<std::string> benches;
  void add(double eff, const std::string& bench) {
    efficiencies.push_back(eff);
    benches.insert(bench);
  }
};
using MeasuredByKey = std::map<std::string, Measured>;

struct LeftOut {
  int points = 0;
  std::string why;
};

void check_device(const ResultsFile& f, const ClusterSpec& cluster) {
  if (f.run.device.starts_with("cpu:")) {
    throw ConfigError("field 'run.device' is '" + f.run.device +
                      "': calibration needs GPU measurements, not CPU reference timings");
  }
  if (f.run.device != cluster.gpu) {
    throw ConfigError("field 'run.device' is '" + f.run.device + "' but cluster '" + cluster.name + "' has gpu '" +
                      cluster.gpu + "'");
  }
}

// The point's efficiency counts for its op kind and, for a pass, for the pass's family,
// each under its own key and its size class's.
void add_compute_point(const PointResult& p, const OpKind& kind, const ClusterSpec& cluster, MeasuredByKey& out) {
  DType dtype = DType::kBf16;
  if (p.params.contains("dtype") && p.params["dtype"].is_string()) parse_dtype(p.params["dtype"].get<std::string>(), &dtype);
  const double floor_s = compute_time_s(KernelCost{p.declared_flops, p.declared_bytes, 0}, dtype, cluster, 1.0);
  const double eff = floor_s / p.stats.median;
  const int cls = Calibration::size_class(p.declared_flops > 0 ? p.declared_flops : p.declared_bytes);
  for (std::string_view name : {kind.name, kind.family}) {
    out[std::string(name)].add(eff, p.bench);
    out[Calibration::size_class_key(name, cls)].add(eff, p.bench);
    if (kind.family == kind.name) break;
  }
}

// "compute gemm: efficiency 0.81 (median of 4 points of gemm, range 0.78..0.83)"
std::string fit_note(const std::string& what, const std::string& key, double eff, const Measured& m) {
  const SampleStats s = summarize(m.efficiencies);
  std::string benches;
  for (const auto& b : m.benches) benches += (benches.empty() ? "" : ", ") + b;
  return what + " " + key + ": efficiency " + std::to_string(eff) + " (median of " + std::to_string(s.n) +
         " points of " + benches + ", range " + std::to_string(s.min) + ".." + std::to_string(s.max) + ")";
}

double fitted_efficiency(const Measured& m) { return std::clamp(summarize(m.efficiencies).median, 1e-4, 1.0); }

}  // namespace

CalibrationFit fit_calibration(const std::vector<ResultsFile>& results, const ClusterSpec& cluster) {
  MeasuredByKey compute;
  std::map<std::string, MeasuredByKey> comm;  // link tier -> collective name -> measured
  std::map<std::string, LeftOut> left_out;    // benchmark -> points not fitted, and why
  auto leave_out = [&](const PointResult& p, std::string why) {
    LeftOut& l = left_out[p.bench];
    ++l.points;
    l.why = std::move(why);
  };
  for (const ResultsFile& f : results) {
    check_device(f, cluster);
    for (const PointResult& p : f.points) {
      if (p.status != PointStatus::kOk || p.source != "measured" || p.stats.median <= 0) continue;
      if (const auto collective = bench_collective(p.bench)) {
        const auto bus = p.metrics.find("busbw_GBps");
        if (bus == p.metrics.end()) {
          leave_out(p, "a collective point without a busbw_GBps metric");
          continue;
        }
        if (bus->second <= 0) {  // busbw_factor is 0 for one rank (workloads/collective_sizes.h)
          leave_out(p, "a one-rank collective: nothing crosses a link, so busbw is 0");
          continue;
        }
        const bool ib = p.metrics.count("crosses_nodes") && p.metrics.at("crosses_nodes") > 0;
        const LinkTier tier = ib ? LinkTier::kIb : LinkTier::kNvlink;
        comm[std::string(tier_name(tier))][std::string(collective_name(*collective))].add(
            bus->second * 1e9 / link_bytes_per_s(cluster, ib, 1), p.bench);
      } else if (const auto kind = bench_op_kind(p.bench)) {
        if (p.declared_flops <= 0 && p.declared_bytes <= 0) {
          leave_out(p, "declares no FLOPs or bytes");
          continue;
        }
        add_compute_point(p, op_kind_named(*kind), cluster, compute);
      } else if (const auto why = bench_without_op_kind(p.bench)) {
        leave_out(p, std::string(*why));
      } else {
        leave_out(p, "not a benchmark of an op kind or a collective (classify it in workloads/op_kinds.cc)");
      }
    }
  }

  CalibrationFit fit;
  fit.calibration = default_calibration();
  for (const auto& [key, m] : compute) {
    fit.calibration.compute[key] = fitted_efficiency(m);
    fit.notes.push_back(fit_note("compute", key, fit.calibration.compute[key], m));
  }
  for (const auto& [tier, by_collective] : comm) {
    for (const auto& [collective, m] : by_collective) {
      fit.calibration.comm[tier][collective] = fitted_efficiency(m);
      fit.notes.push_back(fit_note(tier, collective, fit.calibration.comm[tier][collective], m));
    }
  }
  for (const auto& [bench, l] : left_out) {
    fit.notes.push_back("not fitted: " + bench + " (" + std::to_string(l.points) + " points): " + l.why);
  }
  fit.calibration.device = cluster.gpu;
  fit.calibration.source = "seqscale calibrate from " + std::to_string(results.size()) + " results file(s)";
  return fit;
}

}  // namespace seqscale
