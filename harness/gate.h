// Performance gate: compares a candidate results file with a baseline, point by point.
// Three outcomes (ANCHORS.md section 6, after asv/Pinpoint):
//   FAIL          slowdown significant (Mann-Whitney U, Bonferroni over the compared
//                 points) AND the median ratio is beyond the point's noise band; or any
//                 change of a deterministic memory number; or a candidate point whose
//                 check against its CPU reference failed (a wrong kernel's time is moot).
//   PASS          the ratio's 95% bootstrap interval lies inside the noise band.
//   INCONCLUSIVE  anything else: rerun with more samples.
#pragma once
#include <string>
#include <vector>

#include "harness/results/results.h"

namespace seqscale {

enum class GateOutcome { kPass, kInconclusive, kFail };
std::string_view gate_outcome_name(GateOutcome o);

struct GateOptions {
  double alpha = 0.05;          // family-wise, split over the compared points
  double min_band = 0.02;       // noise band floor: changes under 2% are never FAILs
  double noise_multiplier = 3;  // band = max(min_band, k * relative MAD of the two samples)
  std::int64_t min_samples = 8; // fewer samples than this -> INCONCLUSIVE
};

struct GateRow {
  std::string id;
  GateOutcome outcome = GateOutcome::kPass;
  double ratio = 1;        // candidate median / baseline median (> 1 is slower)
  double ci_lo = 1, ci_hi = 1;
  double p_value = 1;
  double band = 0;
  std::string check = "-"; // the candidate's check against its CPU reference: ok, FAILED or -
  std::string note;        // why, in words
};

struct GateReport {
  std::vector<GateRow> rows;
  GateOutcome overall = GateOutcome::kPass;
};

// Throws ConfigError when the two files come from different devices or drivers.
GateReport gate(const ResultsFile& baseline, const ResultsFile& candidate, const GateOptions& opt = {});

}  // namespace seqscale
