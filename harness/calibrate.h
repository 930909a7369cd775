// Fits the cost model's efficiencies from measured results: for every timed point with a
// declared cost, efficiency = roofline floor at 100% / measured median; per kernel, the
// median over its points. Collectives: measured busbw / the tier's link bandwidth.
#pragma once
#include <string>
#include <vector>

#include "harness/results/results.h"
#include "model/calibration.h"
#include "workloads/specs.h"

namespace seqscale {

struct CalibrationFit {
  Calibration calibration;
  std::vector<std::string> notes;  // one line per fitted key: points used, spread
};

// Throws ConfigError for CPU-only results or results from a GPU other than the cluster's.
CalibrationFit fit_calibration(const std::vector<ResultsFile>& results, const ClusterSpec& cluster);

// The cluster file describing a measured device (e.g. "NVIDIA H100 80GB HBM3" -> h100).
std::string cluster_for_device(const std::string& device);

}  // namespace seqscale
