// Runs one matrix point inside this process: finds its benchmark, gives it the backend's
// BenchState (timing, memory tracking) and turns what happened into a PointResult.
// OutOfMemory -> `oom`, SkipPoint -> `skipped`, any other exception -> `failed`.
#pragma once
#include <functional>
#include <memory>

#include "harness/bench/registry.h"
#include "harness/matrix/matrix.h"
#include "harness/results/results.h"

namespace seqscale {

using StateFactory = std::function<std::unique_ptr<BenchState>(const MatrixPoint&)>;

// seqscale_cuda installs the CUDA factory at static-init time.
void install_cuda_state_factory(StateFactory factory);
std::unique_ptr<BenchState> make_cpu_state(const MatrixPoint& point);

PointResult execute_point(const MatrixPoint& point);

// Self-test benchmarks (suite "selftest") exist so the harness's isolation can be tested
// with planted failures: mode = ok | oom | fail | crash | hang | abort.
void register_selftest_benches();

}  // namespace seqscale
