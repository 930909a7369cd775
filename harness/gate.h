// Performance gate: compares a candidate results file with a baseline, point by point.
// Three outcomes (ANCHORS.md section 6, after asv/Pinpoint):
//   FAIL          a timed point whose slowdown is significant over independent runs AND
//                 larger than its noise band; or a deterministic value that moved (below);
//                 or a candidate point whose check against its CPU reference failed (a
//                 wrong kernel's time is moot); or a point that ran and now OOMs or fails.
//   PASS          the ratio's confidence interval lies inside the noise band, or below it
//                 (faster: the note says by how much); deterministic values unchanged.
//   INCONCLUSIVE  anything else, including too few runs to decide: the row says how many
//                 runs a side would decide it.
//
// Timed points: the unit of evidence is one run (`bench --repeat K`: K separate processes,
// interleaved; `runs_median_s` holds each run's median). Samples inside one run share the
// machine's state for that run and are not independent, so they never enter a test. Per
// point, on the logs of the run medians:
//   ratio   Hodges-Lehmann estimate of the shift (median of every pairwise difference),
//           with its exact distribution-free interval (Moses) at `confidence`;
//   p       exact two-sided Mann-Whitney U over the runs, Holm-adjusted over the timed
//           points compared (family-wise `alpha`);
//   band    max(min_band, k * sqrt((s_b^2 + s_c^2) / 2)), s the standard deviation of a
//           side's log run medians: the run-to-run spread (drift over the session
//           included; the shift between sessions too when a side's runs span sessions,
//           which is why a baseline is best recorded over several sessions: bench --repeat
//           into the same folder at different times adds runs); and at least k x the
//           spread of the log ratios across the points compared (1.4826 x their MAD, from
//           5 points up): what the machine's state between the two sessions did to
//           points that did not change, which no single point's runs can show.
//           k = noise_multiplier, or by default 1.25 x the normal quantile that an A/A
//           comparison of m points exceeds 1% of the time (1 - 0.01/2m): 3.2 for one
//           point, 4.0 for 8, 4.3 for 16, 4.9 for 100; the 1.25 pays for the spread being
//           estimated from a few runs. Chosen with scripts/aa_study (README, "Gate").
//
// Deterministic values are compared exactly, within a stated relative tolerance:
//   source "model" points (predictions): status, every sample and every metric and the
//     declared work; any move is a FAIL and the row lists what moved and by how much;
//   measured points: memory (`*_bytes` metrics but baseline_bytes, the driver's context)
//     may not grow, declared FLOPs and bytes and the model numbers a point carries
//     (`model_*`, `*replay_peak_bytes`, tokens_per_step) may not move, wrong_elements
//     must stay 0, and the check must pass.
// Results from different devices or drivers are refused (ConfigError, exit 2).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/results/results.h"

namespace seqscale {

enum class GateOutcome { kPass, kInconclusive, kFail };
std::string_view gate_outcome_name(GateOutcome o);

struct GateOptions {
  double alpha = 0.05;           // family-wise, Holm over the timed points compared
  double confidence = 0.95;      // of the ratio's interval
  double min_band = 0.02;        // noise band floor: changes under 2% are never FAILs
  double noise_multiplier = 0;   // k of the band; 0: auto_noise_multiplier(points compared)
  double exact_rel_tol = 1e-6;   // predictions, declared work: |a - b| <= tol * max(|a|, |b|)
  double memory_rel_tol = 0;     // measured memory may grow by this fraction (0: not at all)
  int max_runs_hint = 50;        // "runs needed" estimates above this say "more than 50"
};

struct GateRow {
  std::string id;
  GateOutcome outcome = GateOutcome::kPass;
  std::string kind = "time";     // time (runs compared) | exact (deterministic values) | status
  double baseline = 0, candidate = 0;  // time: median of run medians (s); exact: the value that moved most
  std::string quantity = "median_s";   // what baseline/candidate are
  double ratio = 1;              // candidate / baseline (> 1 is slower or larger)
  double ci_lo = 1, ci_hi = 1;   // time: the ratio's interval (available only with enough runs)
  bool ci_available = false;
  double p_value = 1;            // time: Mann-Whitney over runs, raw
  double p_adjusted = 1;         // Holm-adjusted
  double band = 0;
  int runs_baseline = 0, runs_candidate = 0;
  int runs_needed = 0;           // INCONCLUSIVE time rows: runs a side that would likely decide (0: decided)
  std::string check = "-";       // the candidate's check against its CPU reference: ok, FAILED or -
  std::vector<std::string> changes;  // deterministic values that moved: "peak_bytes 1000 -> 1200 (+20%)"
  std::string note;              // why, in words
};

struct GateReport {
  std::vector<GateRow> rows;
  GateOutcome overall = GateOutcome::kPass;
  int pass = 0, inconclusive = 0, fail = 0;
  int timed_compared = 0;        // points in the Holm family
  double cross_point_spread = 0; // robust spread of the points' log ratios (0: under 5 points)
  double noise_multiplier = 0;   // the band's k used
  GateOptions options;
  RunMetadata baseline_run, candidate_run;
};

// Throws ConfigError when the two files come from different devices or drivers.
GateReport gate(const ResultsFile& baseline, const ResultsFile& candidate, const GateOptions& opt = {});

// The band's default multiplier for a comparison of `points` timed points.
double auto_noise_multiplier(int points);

// The fewest runs a side for which a completely separated comparison is significant after
// the correction over `points` compared points, and for which the ratio's interval exists.
int runs_to_decide(int points, const GateOptions& opt = {});

// ---- output -----------------------------------------------------------------------
// Fixed-width text, one row per point; with changes_only, the PASS rows that moved nothing
// are left out (counted in the last line).
std::string gate_table(const GateReport& r, bool changes_only = false);
std::string gate_markdown(const GateReport& r);   // a CI job summary (GitHub's Markdown)
nlohmann::json gate_json(const GateReport& r);

// ---- baselines (results/baselines/<device-or-model>.json) --------------------------
// "NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3"; "model" -> "model".
std::string baseline_name(const std::string& device);

struct BaselineStamp {
  std::string who;     // --by, else $SEQSCALE_BASELINE_BY, $USER or $LOGNAME
  std::string when;    // UTC, ISO 8601
  std::string commit;  // the candidate's run.git_commit: the code that produced the numbers
  std::string reason;
};
// The candidate as the new baseline, stamped in run.extra.baseline (who, when, commit,
// reason, and the previous stamp). Refuses (ConfigError) a candidate whose check failed
// at any point, and one from another device or driver than the baseline it replaces.
ResultsFile make_baseline(const ResultsFile& candidate, const std::optional<ResultsFile>& previous,
                          const BaselineStamp& stamp);

}  // namespace seqscale
