// Prices a matrix point with the cost model instead of running it (source: model).
#pragma once
#include "harness/bench/registry.h"
#include "harness/matrix/matrix.h"
#include "harness/results/results.h"
#include "model/calibration.h"
#include "workloads/specs.h"

namespace seqscale {

PointResult price_point(const MatrixPoint& point, const ClusterSpec& cluster, const Calibration& cal);

}  // namespace seqscale
