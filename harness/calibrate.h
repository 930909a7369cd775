// Fits the cost model's efficiencies from measured results, under the op-kind names the
// model prices with (workloads/op_kinds.h):
//   compute     every timed point of a benchmark that measures one op kind, efficiency =
//               roofline floor at 100% / measured median. The op kind's efficiency is the
//               median over its points, and so is each size class's ("gemm@40"). A pass's
//               points count for its family too ("layernorm_fwd" and "layernorm_bwd" fit
//               "layernorm"), which prices the ops named by family and the passes nothing
//               measured.
//   collectives measured busbw / the tier's link bandwidth, per collective and tier.
// Points of benchmarks that time no single op kind (whole steps, the copy ceiling) are not
// fitted; the notes say so.
#pragma once
#include <string>
#include <vector>

#include "harness/results/results.h"
#include "model/calibration.h"
#include "workloads/specs.h"

namespace seqscale {

struct CalibrationFit {
  Calibration calibration;
  std::vector<std::string> notes;  // one line per fitted key (points, benchmarks, spread) and per benchmark left out
};

// Throws ConfigError for CPU-only results or results from a GPU other than the cluster's.
CalibrationFit fit_calibration(const std::vector<ResultsFile>& results, const ClusterSpec& cluster);

// The cluster file describing a measured device (e.g. "NVIDIA H100 80GB HBM3" -> h100).
std::string cluster_for_device(const std::string& device);

}  // namespace seqscale
