#include "harness/gate.h"

#include <algorithm>
#include <cmath>

#include "workloads/config_error.h"

namespace seqscale {
namespace {

double relative_mad(const std::vector<double>& v) {
  const SampleStats s = summarize(v);
  return s.median > 0 ? 1.4826 * s.mad / s.median : 0;  // MAD scaled to a normal sigma
}

}  // namespace

std::string_view gate_outcome_name(GateOutcome o) {
  switch (o) {
    case GateOutcome::kPass: return "PASS";
    case GateOutcome::kInconclusive: return "INCONCLUSIVE";
    case GateOutcome::kFail: return "FAIL";
  }
  return "?";
}

GateReport gate(const ResultsFile& base, const ResultsFile& cand, const GateOptions& opt) {
  if (base.run.device != cand.run.device) {
    throw ConfigError("refusing to compare results from different devices: field 'run.device' is '" +
                      base.run.device + "' vs '" + cand.run.device + "'");
  }
  if (base.run.driver != cand.run.driver) {
    throw ConfigError("refusing to compare results from different drivers: field 'run.driver' is '" +
                      base.run.driver + "' vs '" + cand.run.driver + "'");
  }
  GateReport report;
  std::vector<std::pair<const PointResult*, const PointResult*>> pairs;
  for (const auto& b : base.points) {
    const PointResult* c = cand.find(b.id);
    if (!c) {
      GateRow row;
      row.id = b.id;
      row.outcome = GateOutcome::kInconclusive;
      row.note = "missing from candidate";
      report.rows.push_back(row);
      continue;
    }
    pairs.emplace_back(&b, c);
  }
  int timed = 0;
  for (const auto& [b, c] : pairs) timed += b->status == PointStatus::kOk && c->status == PointStatus::kOk;
  const double alpha = opt.alpha / std::max(1, timed);

  for (const auto& [b, c] : pairs) {
    GateRow row;
    row.id = b->id;
    if (c->check) row.check = c->check->ok ? "ok" : "FAILED";
    if (c->check && !c->check->ok) {
      row.outcome = GateOutcome::kFail;
      row.note = "check failed: " + c->check->worst;
      report.rows.push_back(row);
      continue;
    }
    if (b->status != c->status) {
      // A point that used to fit and now OOMs (or fails) is a regression; the reverse is not.
      const bool worse = b->status == PointStatus::kOk;
      row.outcome = worse ? GateOutcome::kFail : GateOutcome::kPass;
      row.note = std::string("status ") + std::string(status_name(b->status)) + " -> " + std::string(status_name(c->status));
      report.rows.push_back(row);
      continue;
    }
    if (b->status != PointStatus::kOk) {
      row.note = std::string("both ") + std::string(status_name(b->status));
      report.rows.push_back(row);
      continue;
    }
    // Memory is deterministic: any change of the high-water mark is gated exactly.
    auto bm = b->metrics.find("peak_bytes");
    auto cm = c->metrics.find("peak_bytes");
    if (bm != b->metrics.end() && cm != c->metrics.end() && cm->second > bm->second) {
      row.outcome = GateOutcome::kFail;
      row.note = "peak_bytes " + std::to_string(static_cast<long long>(bm->second)) + " -> " +
                 std::to_string(static_cast<long long>(cm->second));
      report.rows.push_back(row);
      continue;
    }
    const auto& sa = b->samples_s;
    const auto& sb = c->samples_s;
    row.band = std::max(opt.min_band, opt.noise_multiplier * std::max(relative_mad(sa), relative_mad(sb)));
    if (static_cast<std::int64_t>(std::min(sa.size(), sb.size())) < opt.min_samples) {
      row.outcome = GateOutcome::kInconclusive;
      row.note = "fewer than " + std::to_string(opt.min_samples) + " samples";
      const double mb = median_of(sa);
      row.ratio = mb > 0 ? median_of(sb) / mb : 1;
      report.rows.push_back(row);
      continue;
    }
    const RatioInterval ci = median_ratio_interval(sa, sb);
    row.ratio = ci.ratio;
    row.ci_lo = ci.lo;
    row.ci_hi = ci.hi;
    row.p_value = mann_whitney_p(sa, sb);
    if (row.p_value < alpha && row.ratio > 1 + row.band) {
      row.outcome = GateOutcome::kFail;
      row.note = "slower beyond the noise band";
    } else if (ci.lo >= 1 - row.band && ci.hi <= 1 + row.band) {
      row.outcome = GateOutcome::kPass;
    } else if (row.p_value < alpha && row.ratio < 1 - row.band) {
      row.outcome = GateOutcome::kPass;
      row.note = "faster";
    } else {
      row.outcome = GateOutcome::kInconclusive;
      row.note = "interval leaves the noise band; rerun with more samples";
    }
    report.rows.push_back(row);
  }
  for (const auto& r : report.rows) {
    if (r.outcome == GateOutcome::kFail) report.overall = GateOutcome::kFail;
    else if (r.outcome == GateOutcome::kInconclusive && report.overall == GateOutcome::kPass) {
      report.overall = GateOutcome::kInconclusive;
    }
  }
  return report;
}

}  // namespace seqscale
