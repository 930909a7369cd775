// The measured maximum sequence length (`seqscale bench --maxseq AXIS`): for every group of
// matrix points that differ only in one axis (the sequence length, L, seq...), bisect that
// axis over the matrix's own grid on the real hardware. An `oom` probe is a data point
// (infeasible), not an error. Every probe is recorded in results.json (so an interrupted
// search resumes; with a cluster the search starts from the model's answer and proves the
// boundary on the hardware: the value runs, the next one is OOM), and the summary, with the model's answer for the same grid (the priced
// points, bisected alike), goes to measured_max_seq.json.
//
// Not the model's search: `seqscale maxseq` and max_sequence() (model/search.h) predict the
// longest sequence a framework preset fits on a cluster, over its plans, without running.
#pragma once
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/runner.h"
#include "model/calibration.h"
#include "workloads/specs.h"

namespace seqscale {

struct MeasuredMaxSeq {
  nlohmann::json group;                   // the other parameters
  std::string bench, backend, axis;
  std::optional<std::int64_t> measured_max;   // none: even the smallest value does not fit
  std::optional<std::int64_t> predicted_max;  // from the model (when a cluster is given)
  std::string first_infeasible_reason;        // the OOM (or failure) that bounds the search
  nlohmann::json probes = nlohmann::json::array();  // [{value, status, reason}]
};

struct MeasureMaxSeqOptions {
  std::string axis;
  RunOptions run;
  std::optional<ClusterSpec> cluster;    // to add the model's prediction
  Calibration calibration;
};

// Bisection over a sorted grid: the largest index whose probe says feasible, assuming
// feasibility is monotone (what fits at s fits below s). nullopt if none fits.
std::optional<std::size_t> bisect_largest_feasible(std::size_t n, const std::function<std::optional<bool>(std::size_t)>& feasible);
// The same, with lo feasible and hi infeasible already proven.
std::optional<std::size_t> bisect_between(std::size_t lo, std::size_t hi,
                                          const std::function<std::optional<bool>(std::size_t)>& feasible);
// The same answer, searched from a hint (the model's prediction): probe the hint, then gallop
// (1, 2, 4, ... steps) up while probes fit or down while they fail, then bisect the bracket.
// When the hint is the boundary this costs two probes, the hint and the next value.
std::optional<std::size_t> search_largest_feasible_from(std::size_t n, std::size_t hint,
                                                        const std::function<std::optional<bool>(std::size_t)>& feasible);

// One row per group of points; `log` gets a line per probe.
std::vector<MeasuredMaxSeq> measure_max_sequence(const Matrix& matrix, const MeasureMaxSeqOptions& options,
                                                 std::ostream& log);
nlohmann::json to_json(const MeasuredMaxSeq& row);

}  // namespace seqscale
