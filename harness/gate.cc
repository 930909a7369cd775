#include "harness/gate.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>

#include "workloads/config_error.h"

namespace seqscale {
namespace {

// ---- small helpers ----------------------------------------------------------------

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

// 1.234 ms, 56.7 us, 2.31 s.
std::string fmt_time(double s) {
  if (s <= 0) return "-";
  if (s < 1e-3) return fmt("%.4g us", s * 1e6);
  if (s < 1) return fmt("%.4g ms", s * 1e3);
  return fmt("%.4g s", s);
}

std::string fmt_percent(double fraction) { return fmt("%+.2f%%", fraction * 100); }

bool close_enough(double a, double b, double rel_tol) {
  return std::fabs(a - b) <= rel_tol * std::max(std::fabs(a), std::fabs(b));
}

std::string moved(const std::string& what, double a, double b) {
  std::string s = what + " " + fmt("%.10g", a) + " -> " + fmt("%.10g", b);
  if (a != 0) s += " (" + fmt_percent(b / a - 1) + ")";
  return s;
}

double stddev_of(const std::vector<double>& v) {
  if (v.size() < 2) return 0;
  const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - mean) * (x - mean);
  return std::sqrt(ss / static_cast<double>(v.size() - 1));
}

// The independent runs of a point: runs_median_s (bench --repeat), else its one run.
std::vector<double> runs_of(const PointResult& p) {
  if (!p.runs_median_s.empty()) return p.runs_median_s;
  if (!p.samples_s.empty()) return {median_of(p.samples_s)};
  return {};
}

std::vector<double> logs_of(const std::vector<double>& v) {
  std::vector<double> out;
  for (double x : v) out.push_back(std::log(std::max(x, 1e-300)));
  return out;
}

void refuse_different_machines(const RunMetadata& base, const RunMetadata& cand) {
  if (base.device != cand.device) {
    throw ConfigError("refusing to compare results from different devices: the baseline's field 'run.device' is '" +
                      base.device + "' and the candidate's is '" + cand.device +
                      "'; gate against the baseline recorded on the same device (results/baselines/" +
                      baseline_name(cand.device) + ".json)");
  }
  if (base.driver != cand.driver) {
    throw ConfigError("refusing to compare results from different drivers: the baseline's field 'run.driver' is '" +
                      base.driver + "' and the candidate's is '" + cand.driver +
                      "'; record a new baseline on this driver (seqscale gate --update-baseline)");
  }
}

// ---- deterministic values ---------------------------------------------------------

// Model numbers a measured point carries beside its measurement (steps): they may not move.
bool is_model_number(const std::string& key) {
  return key.starts_with("model_") || key.ends_with("replay_peak_bytes") || key == "tokens_per_step";
}

// Memory the benchmark itself allocates: it may not grow. baseline_bytes is the driver's
// context and libraries before the point, not ours.
bool is_gated_memory(const std::string& key) {
  return key.ends_with("_bytes") && key != "baseline_bytes" && !is_model_number(key);
}

struct ExactDiff {
  std::vector<std::string> fails;   // moved values that FAIL
  std::vector<std::string> notes;   // moved values that do not (memory that fell)
  std::string quantity;             // the value that moved most, for the table
  double base = 0, cand = 0;
  double worst = -1;                // its |relative move|
};

void record_move(ExactDiff& d, const std::string& what, double a, double b, bool fails) {
  (fails ? d.fails : d.notes).push_back(moved(what, a, b));
  const double rel = std::fabs(b - a) / std::max({std::fabs(a), std::fabs(b), 1e-300});
  if (fails && rel > d.worst) {
    d.worst = rel;
    d.quantity = what;
    d.base = a;
    d.cand = b;
  }
}

// source "model": every number is a prediction; any move beyond the tolerance fails.
ExactDiff compare_prediction(const PointResult& b, const PointResult& c, const GateOptions& opt) {
  ExactDiff d;
  if (b.status != c.status) {
    d.fails.push_back(std::string("status ") + std::string(status_name(b.status)) + " -> " +
                      std::string(status_name(c.status)));
    d.worst = INFINITY;
    d.quantity = "status";
  }
  if (b.samples_s.size() != c.samples_s.size()) {
    d.fails.push_back("samples_s has " + std::to_string(b.samples_s.size()) + " -> " +
                      std::to_string(c.samples_s.size()) + " values");
  } else {
    for (size_t i = 0; i < b.samples_s.size(); ++i) {
      if (!close_enough(b.samples_s[i], c.samples_s[i], opt.exact_rel_tol)) {
        record_move(d, b.samples_s.size() == 1 ? "time_s" : "samples_s[" + std::to_string(i) + "]", b.samples_s[i],
                    c.samples_s[i], true);
      }
    }
  }
  if (!close_enough(b.declared_flops, c.declared_flops, opt.exact_rel_tol)) {
    record_move(d, "declared.flops", b.declared_flops, c.declared_flops, true);
  }
  if (!close_enough(b.declared_bytes, c.declared_bytes, opt.exact_rel_tol)) {
    record_move(d, "declared.bytes", b.declared_bytes, c.declared_bytes, true);
  }
  std::set<std::string> keys;
  for (const auto& [k, v] : b.metrics) keys.insert(k);
  for (const auto& [k, v] : c.metrics) keys.insert(k);
  for (const auto& k : keys) {
    const auto ib = b.metrics.find(k), ic = c.metrics.find(k);
    if (ib == b.metrics.end()) {
      d.fails.push_back(k + " (new) " + fmt("%.10g", ic->second));
    } else if (ic == c.metrics.end()) {
      d.fails.push_back(k + " " + fmt("%.10g", ib->second) + " (gone)");
    } else if (!close_enough(ib->second, ic->second, opt.exact_rel_tol)) {
      record_move(d, k, ib->second, ic->second, true);
    }
  }
  return d;
}

// A measured point's deterministic numbers: memory, declared work, model numbers, wrong elements.
ExactDiff compare_measured_exact(const PointResult& b, const PointResult& c, const GateOptions& opt) {
  ExactDiff d;
  if (!close_enough(b.declared_flops, c.declared_flops, opt.exact_rel_tol)) {
    record_move(d, "declared.flops", b.declared_flops, c.declared_flops, true);
  }
  if (!close_enough(b.declared_bytes, c.declared_bytes, opt.exact_rel_tol)) {
    record_move(d, "declared.bytes", b.declared_bytes, c.declared_bytes, true);
  }
  for (const auto& [k, cv] : c.metrics) {
    if (k == "wrong_elements" && cv > 0) {
      d.fails.push_back("wrong_elements " + fmt("%.0f", cv));
      d.worst = INFINITY;
      d.quantity = k;
    }
    const auto ib = b.metrics.find(k);
    if (ib == b.metrics.end()) continue;
    const double bv = ib->second;
    if (is_gated_memory(k)) {
      if (cv > bv * (1 + opt.memory_rel_tol)) record_move(d, k, bv, cv, true);
      else if (cv < bv) record_move(d, k, bv, cv, false);
    } else if (is_model_number(k) && !close_enough(bv, cv, opt.exact_rel_tol)) {
      record_move(d, k, bv, cv, true);
    }
  }
  return d;
}

void join_note(std::string& note, const std::string& more) {
  if (more.empty()) return;
  note += (note.empty() ? "" : "; ") + more;
}

GateOutcome worst_of(GateOutcome a, GateOutcome b) {
  return static_cast<int>(a) > static_cast<int>(b) ? a : b;
}

// ---- timed points -----------------------------------------------------------------

struct Timed {
  size_t row = 0;
  std::vector<double> lb, lc;  // logs of the run medians
};

constexpr int kMinPointsForSpread = 5;

// First pass: the numbers of one timed comparison (no decision: that needs the family's p).
void measure_timing(GateRow& row, const Timed& t, const GateOptions& opt, double k) {
  row.runs_baseline = static_cast<int>(t.lb.size());
  row.runs_candidate = static_cast<int>(t.lc.size());
  row.baseline = std::exp(median_of(t.lb));
  row.candidate = std::exp(median_of(t.lc));
  const ShiftInterval hl = hodges_lehmann_interval(t.lb, t.lc, opt.confidence);
  row.ratio = std::exp(hl.shift);
  row.ci_lo = std::exp(hl.lo);
  row.ci_hi = std::exp(hl.hi);
  row.ci_available = hl.available;
  row.p_value = mann_whitney_p(t.lb, t.lc);
  // The run-to-run spread, pooled over both sides (drift over a session included, as the
  // runs are interleaved over it; shifts between sessions too, when a side's runs span
  // sessions).
  const double sb = stddev_of(t.lb), sc = stddev_of(t.lc);
  row.band = std::max(opt.min_band, k * std::sqrt((sb * sb + sc * sc) / 2));
}

// How far the points of this comparison move apart from one another: 1.4826 x the median
// absolute deviation of their log ratios (robust: a few regressed points do not move it,
// and a change that slows every point alike shifts the ratios without spreading them).
// Two sessions differ by more than their runs show when the machine's state differs
// between them (other tenants, cache, clocks) and hits points unevenly; no single point's
// runs can see that, but the points together can. 0 under kMinPointsForSpread points.
double cross_point_spread(const std::vector<GateRow>& rows, const std::vector<Timed>& family) {
  std::vector<double> logs;
  for (const auto& t : family) {
    const GateRow& row = rows[t.row];
    if (row.runs_baseline >= 2 && row.runs_candidate >= 2) logs.push_back(std::log(row.ratio));
  }
  if (static_cast<int>(logs.size()) < kMinPointsForSpread) return 0;
  const double mid = median_of(logs);
  for (auto& x : logs) x = std::fabs(x - mid);
  return 1.4826 * median_of(logs);
}

// Holm's step-down adjustment over the family.
void holm_adjust(std::vector<GateRow>& rows, const std::vector<Timed>& family) {
  std::vector<size_t> order(family.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return rows[family[a].row].p_value < rows[family[b].row].p_value; });
  double running = 0;
  const double m = static_cast<double>(family.size());
  for (size_t i = 0; i < order.size(); ++i) {
    GateRow& row = rows[family[order[i]].row];
    running = std::max(running, std::min(1.0, (m - static_cast<double>(i)) * row.p_value));
    row.p_adjusted = running;
  }
}

// Runs a side that would likely decide an undecided row: enough for the correction, and
// enough to shrink the interval inside the band or the p-value under alpha at the effect seen.
int estimate_runs_needed(const GateRow& row, const Timed& t, int family, const GateOptions& opt) {
  const int n = std::min(row.runs_baseline, row.runs_candidate);
  double want = runs_to_decide(family, opt);
  const double edge = std::log(1 + row.band);
  const double shift = std::log(row.ratio);
  if (shift > edge) {
    // Looks slower beyond the band: the p-value must fall under alpha / family.
    const double z_now = normal_quantile(1 - std::max(row.p_value, 1e-300) / 2);
    const double z_need = normal_quantile(1 - opt.alpha / (2.0 * family));
    want = std::max(want, z_now > 0.05 ? n * (z_need / z_now) * (z_need / z_now) : INFINITY);
  } else {
    // Inside the band: the interval's upper end must come under the band's edge.
    double half = std::log(row.ci_hi) - shift;
    if (!row.ci_available || half <= 0) {
      const double sb = stddev_of(t.lb), sc = stddev_of(t.lc);
      half = normal_quantile(1 - (1 - opt.confidence) / 2) *
             std::sqrt(sb * sb / std::max<size_t>(1, t.lb.size()) + sc * sc / std::max<size_t>(1, t.lc.size()));
    }
    const double margin = edge - shift;
    want = std::max(want, margin > 0 ? n * (half / margin) * (half / margin) : INFINITY);
  }
  want = std::max(want, n + 1.0);
  return want > opt.max_runs_hint ? opt.max_runs_hint + 1 : static_cast<int>(std::ceil(want));
}

std::string runs_needed_text(int needed, const GateOptions& opt) {
  if (needed > opt.max_runs_hint) return "more than " + std::to_string(opt.max_runs_hint) + " runs a side would be needed";
  return "~" + std::to_string(needed) + " runs a side would decide (bench --repeat " + std::to_string(needed) + ")";
}

// Second pass: the verdict of one timed comparison.
GateOutcome decide_timing(GateRow& row, const Timed& t, int family, const GateOptions& opt) {
  const double over = row.ratio - 1;
  if (row.runs_baseline < 2 || row.runs_candidate < 2) {
    row.runs_needed = std::max(2, runs_to_decide(family, opt));
    join_note(row.note, "one run a side proves nothing (its samples share the run's machine state): " +
                            runs_needed_text(row.runs_needed, opt));
    return GateOutcome::kInconclusive;
  }
  if (row.p_adjusted < opt.alpha && row.ratio > 1 + row.band) {
    join_note(row.note, "slower by " + fmt("%.1f%%", over * 100) + ", beyond the " + fmt("%.1f%%", row.band * 100) +
                            " band");
    return GateOutcome::kFail;
  }
  if (row.ci_available && row.ci_hi <= 1 + row.band) {
    if (row.ratio < 1 - row.band) {
      join_note(row.note, "faster by " + fmt("%.1f%%", -over * 100) + ": consider updating the baseline");
    }
    return GateOutcome::kPass;
  }
  row.runs_needed = estimate_runs_needed(row, t, family, opt);
  const int n = std::min(row.runs_baseline, row.runs_candidate);
  if (n < runs_to_decide(family, opt) && row.ratio > 1 + row.band) {
    join_note(row.note, std::to_string(n) + " runs a side cannot be significant over " + std::to_string(family) +
                            " points");
  } else if (row.ratio > 1 + row.band) {
    join_note(row.note, "slower by " + fmt("%.1f%%", over * 100) + " but not significant");
  } else {
    join_note(row.note, "interval leaves the band");
  }
  join_note(row.note, runs_needed_text(row.runs_needed, opt));
  return GateOutcome::kInconclusive;
}

// ---- one row per point ------------------------------------------------------------

// A point both files hold. Returns true when its timing is still to be compared.
bool compare_point(const PointResult& b, const PointResult& c, GateRow& row, const GateOptions& opt) {
  if (c.check) row.check = c.check->ok ? "ok" : "FAILED";
  if (b.source != c.source) {
    row.kind = "status";
    row.outcome = GateOutcome::kInconclusive;
    row.note = "source " + b.source + " vs " + c.source + ": not comparable";
    return false;
  }
  if (b.source == "model") {
    row.kind = "exact";
    ExactDiff d = compare_prediction(b, c, opt);
    row.changes = d.fails;
    if (d.fails.empty()) {
      row.quantity = b.samples_s.empty() ? (b.metrics.empty() ? "-" : b.metrics.begin()->first) : "time_s";
      row.baseline = row.candidate = b.samples_s.empty() ? (b.metrics.empty() ? 0 : b.metrics.begin()->second)
                                                          : b.samples_s[0];
      row.outcome = GateOutcome::kPass;
      return false;
    }
    row.outcome = GateOutcome::kFail;
    row.quantity = d.quantity.empty() ? "-" : d.quantity;
    row.baseline = d.base;
    row.candidate = d.cand;
    row.ratio = d.base != 0 ? d.cand / d.base : 1;
    row.note = "prediction moved: " + std::to_string(d.fails.size()) + " value" + (d.fails.size() > 1 ? "s" : "");
    return false;
  }
  if (c.check && !c.check->ok) {
    row.kind = "status";
    row.outcome = GateOutcome::kFail;
    row.note = "check failed: " + c.check->worst;
    return false;
  }
  if (b.status != c.status) {
    // A point that used to fit and now OOMs (or fails) is a regression; the reverse is not.
    row.kind = "status";
    row.outcome = b.status == PointStatus::kOk ? GateOutcome::kFail : GateOutcome::kPass;
    row.note = std::string("status ") + std::string(status_name(b.status)) + " -> " + std::string(status_name(c.status));
    if (!c.reason.empty()) row.note += " (" + c.reason + ")";
    return false;
  }
  if (b.status != PointStatus::kOk) {
    row.kind = "status";
    row.note = std::string("both ") + std::string(status_name(b.status));
    return false;
  }
  const ExactDiff d = compare_measured_exact(b, c, opt);
  row.changes = d.fails;
  for (const auto& n : d.notes) join_note(row.note, n);
  if (!d.fails.empty()) {
    row.outcome = GateOutcome::kFail;
    join_note(row.note, d.fails.front() + (d.fails.size() > 1 ? " and " + std::to_string(d.fails.size() - 1) + " more" : ""));
  }
  if (b.samples_s.empty() || c.samples_s.empty()) {
    row.kind = d.fails.empty() ? "status" : "exact";
    join_note(row.note, "not timed on both sides");
    return false;
  }
  return true;
}

void count_outcomes(GateReport& report) {
  for (const auto& r : report.rows) {
    report.overall = worst_of(report.overall, r.outcome);
    report.pass += r.outcome == GateOutcome::kPass;
    report.inconclusive += r.outcome == GateOutcome::kInconclusive;
    report.fail += r.outcome == GateOutcome::kFail;
  }
}

std::string md_escape(std::string s) {
  std::string out;
  for (char ch : s) {
    if (ch == '|') out += "\\|";
    else if (ch == '\n') out += ' ';
    else out += ch;
  }
  return out;
}

std::string value_text(const GateRow& r, double v) {
  if (r.kind == "time") return fmt_time(v);
  if (r.kind == "exact") return r.quantity == "time_s" ? fmt_time(v) : fmt("%.6g", v);
  return "-";
}

std::string ci_text(const GateRow& r) {
  if (r.kind != "time") return "-";
  if (!r.ci_available) return "(too few runs)";
  return fmt("[%.3f, ", r.ci_lo) + fmt("%.3f]", r.ci_hi);
}

std::string ratio_text(const GateRow& r) {
  if (r.kind == "status") return "-";
  return fmt("%.4f", r.ratio);
}

std::string run_line(const char* side, const RunMetadata& m) {
  std::string s = std::string(side) + ": " + m.device;
  if (!m.driver.empty()) s += ", driver " + m.driver;
  s += ", commit " + m.git_commit.substr(0, 12) + ", " + m.started_utc;
  if (m.extra.contains("baseline")) {
    const auto& st = m.extra["baseline"];
    s += " (baseline set by " + st.value("updated_by", std::string("?")) + " on " + st.value("updated_utc", std::string("?")) + ")";
  }
  return s;
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

double auto_noise_multiplier(int points) {
  return 1.25 * normal_quantile(1 - 0.01 / (2.0 * std::max(1, points)));
}

int runs_to_decide(int points, const GateOptions& opt) {
  const double per_point = opt.alpha / std::max(1, points);
  const double tail = (1 - opt.confidence) / 2;
  for (int k = 2; k < 1000; ++k) {
    const bool significant = min_mann_whitney_p(k, k) < per_point;
    const bool interval = min_mann_whitney_p(k, k) / 2 <= tail;  // P(U <= 0) = 1 / C(2k, k)
    if (significant && interval) return k;
  }
  return 1000;
}

GateReport gate(const ResultsFile& base, const ResultsFile& cand, const GateOptions& opt) {
  refuse_different_machines(base.run, cand.run);
  GateReport report;
  report.options = opt;
  report.baseline_run = base.run;
  report.candidate_run = cand.run;
  std::vector<Timed> family;
  for (const auto& b : base.points) {
    GateRow row;
    row.id = b.id;
    const PointResult* c = cand.find(b.id);
    if (!c) {
      row.kind = "status";
      row.outcome = GateOutcome::kInconclusive;
      row.note = "missing from candidate";
    } else if (compare_point(b, *c, row, opt)) {
      row.kind = "time";
      family.push_back({report.rows.size(), logs_of(runs_of(b)), logs_of(runs_of(*c))});
    }
    report.rows.push_back(row);
  }
  for (const auto& c : cand.points) {
    if (base.find(c.id)) continue;
    GateRow row;
    row.id = c.id;
    row.kind = "status";
    row.outcome = GateOutcome::kInconclusive;
    row.note = "new: not in the baseline";
    if (c.check && !c.check->ok) {
      row.check = "FAILED";
      row.outcome = GateOutcome::kFail;
      row.note = "new, and its check failed: " + c.check->worst;
    }
    report.rows.push_back(row);
  }
  report.noise_multiplier = opt.noise_multiplier > 0 ? opt.noise_multiplier
                                                     : auto_noise_multiplier(static_cast<int>(family.size()));
  for (const auto& t : family) measure_timing(report.rows[t.row], t, opt, report.noise_multiplier);
  report.cross_point_spread = cross_point_spread(report.rows, family);
  for (const auto& t : family) {
    GateRow& row = report.rows[t.row];
    row.band = std::max(row.band, report.noise_multiplier * report.cross_point_spread);
  }
  holm_adjust(report.rows, family);
  report.timed_compared = static_cast<int>(family.size());
  for (const auto& t : family) {
    GateRow& row = report.rows[t.row];
    row.outcome = worst_of(row.outcome, decide_timing(row, t, report.timed_compared, opt));
  }
  count_outcomes(report);
  return report;
}

// ---- output -----------------------------------------------------------------------

std::string gate_table(const GateReport& r, bool changes_only) {
  size_t w = 5;
  for (const auto& row : r.rows) w = std::max(w, row.id.size());
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%-*s %12s %12s %8s %17s %-12s %8s %6s %5s %-6s  %s\n", static_cast<int>(w), "point",
                "baseline", "candidate", "ratio", "CI", "verdict", "p(adj)", "band", "runs", "check", "note");
  out += buf;
  int hidden = 0;
  for (const auto& row : r.rows) {
    if (changes_only && row.outcome == GateOutcome::kPass && row.changes.empty() && row.note.empty()) {
      ++hidden;
      continue;
    }
    const std::string runs = row.kind == "time" ? std::to_string(row.runs_baseline) + "/" + std::to_string(row.runs_candidate) : "-";
    std::snprintf(buf, sizeof(buf), "%-*s %12s %12s %8s %17s %-12s %8s %6s %5s %-6s  ", static_cast<int>(w),
                  row.id.c_str(), value_text(row, row.baseline).c_str(), value_text(row, row.candidate).c_str(),
                  ratio_text(row).c_str(), ci_text(row).c_str(), std::string(gate_outcome_name(row.outcome)).c_str(),
                  row.kind == "time" ? fmt("%.2g", row.p_adjusted).c_str() : "-",
                  row.kind == "time" ? fmt("%.1f%%", row.band * 100).c_str() : "-", runs.c_str(), row.check.c_str());
    out += buf + row.note + "\n";
    for (size_t i = 0; i < row.changes.size(); ++i) out += "    moved: " + row.changes[i] + "\n";
  }
  out += "overall: " + std::string(gate_outcome_name(r.overall)) + " (" + std::to_string(r.fail) + " FAIL, " +
         std::to_string(r.inconclusive) + " INCONCLUSIVE, " + std::to_string(r.pass) + " PASS; " +
         std::to_string(r.timed_compared) + " timed points, Holm at alpha " + fmt("%g", r.options.alpha) +
         (r.timed_compared > 0 ? ", band multiplier " + fmt("%.2f", r.noise_multiplier) : "") +
         (r.cross_point_spread > 0 ? ", spread across points " + fmt("%.2f%%", r.cross_point_spread * 100) : "") + ")\n";
  if (hidden) out += std::to_string(hidden) + " unchanged PASS rows not shown\n";
  return out;
}

std::string gate_markdown(const GateReport& r) {
  std::string md = "## seqscale gate: **" + std::string(gate_outcome_name(r.overall)) + "**\n\n";
  md += std::to_string(r.fail) + " FAIL · " + std::to_string(r.inconclusive) + " INCONCLUSIVE · " +
        std::to_string(r.pass) + " PASS over " + std::to_string(r.rows.size()) + " points\n\n";
  md += "- " + md_escape(run_line("baseline", r.baseline_run)) + "\n";
  md += "- " + md_escape(run_line("candidate", r.candidate_run)) + "\n\n";
  const auto table = [&](const std::vector<const GateRow*>& rows) {
    std::string t = "| point | baseline | candidate | ratio | CI | verdict | note |\n|---|---:|---:|---:|---|---|---|\n";
    for (const auto* row : rows) {
      std::string note = row->note;
      for (const auto& c : row->changes) note += "<br>" + c;
      t += "| `" + md_escape(row->id) + "` | " + value_text(*row, row->baseline) + " | " +
           value_text(*row, row->candidate) + " | " + ratio_text(*row) + " | " + ci_text(*row) + " | " +
           std::string(gate_outcome_name(row->outcome)) + " | " + md_escape(note) + " |\n";
    }
    return t;
  };
  for (const GateOutcome o : {GateOutcome::kFail, GateOutcome::kInconclusive}) {
    std::vector<const GateRow*> rows;
    for (const auto& row : r.rows) {
      if (row.outcome == o) rows.push_back(&row);
    }
    if (rows.empty()) continue;
    md += "### " + std::string(gate_outcome_name(o)) + "\n\n" + table(rows) + "\n";
  }
  // GitHub caps a job summary at 1 MiB: the full table stops at kMaxRows rows.
  constexpr size_t kMaxRows = 1000;
  std::vector<const GateRow*> all;
  for (const auto& row : r.rows) {
    if (all.size() < kMaxRows) all.push_back(&row);
  }
  md += "<details><summary>All " + std::to_string(r.rows.size()) + " points" +
        (r.rows.size() > kMaxRows ? " (the first " + std::to_string(kMaxRows) + " below; --json-out has all)" : "") +
        "</summary>\n\n" + table(all) + "\n</details>\n\n";
  md += "Timed points compare the medians of independent runs (`bench --repeat K`): ratio = Hodges-Lehmann, " +
        fmt("%g%%", r.options.confidence * 100) + " interval; FAIL when Mann-Whitney over runs is significant (Holm, alpha " +
        fmt("%g", r.options.alpha) + ") and the ratio exceeds the band = max(" + fmt("%g%%", r.options.min_band * 100) +
        ", " + fmt("%.2f", r.noise_multiplier) + " x the run-to-run spread, " +
        fmt("%.2f", r.noise_multiplier) + " x the spread across points" +
        (r.cross_point_spread > 0 ? " (" + fmt("%.2f%%", r.cross_point_spread * 100) + " here)" : "") +
        "). Deterministic values (predictions, "
        "declared work) are compared within a relative " + fmt("%g", r.options.exact_rel_tol) +
        "; measured memory may not grow.\n";
  return md;
}

nlohmann::json gate_json(const GateReport& r) {
  const auto side = [](const RunMetadata& m) {
    nlohmann::json j = {{"device", m.device}, {"driver", m.driver}, {"git_commit", m.git_commit},
                        {"started_utc", m.started_utc}, {"host", m.host}};
    if (m.extra.contains("baseline")) j["baseline"] = m.extra["baseline"];
    return j;
  };
  nlohmann::json j;
  j["overall"] = gate_outcome_name(r.overall);
  j["counts"] = {{"pass", r.pass}, {"inconclusive", r.inconclusive}, {"fail", r.fail}, {"timed_compared", r.timed_compared}};
  j["cross_point_spread"] = r.cross_point_spread;
  j["options"] = {{"alpha", r.options.alpha}, {"confidence", r.options.confidence}, {"min_band", r.options.min_band},
                  {"noise_multiplier", r.noise_multiplier}, {"exact_rel_tol", r.options.exact_rel_tol},
                  {"memory_rel_tol", r.options.memory_rel_tol}};
  j["baseline"] = side(r.baseline_run);
  j["candidate"] = side(r.candidate_run);
  j["rows"] = nlohmann::json::array();
  for (const auto& row : r.rows) {
    nlohmann::json x = {{"id", row.id},
                        {"outcome", gate_outcome_name(row.outcome)},
                        {"kind", row.kind},
                        {"quantity", row.quantity},
                        {"baseline", row.baseline},
                        {"candidate", row.candidate},
                        {"ratio", row.ratio},
                        {"check", row.check},
                        {"changes", row.changes},
                        {"note", row.note}};
    if (row.kind == "time") {
      x["ci"] = row.ci_available ? nlohmann::json{row.ci_lo, row.ci_hi} : nlohmann::json(nullptr);
      x["p"] = row.p_value;
      x["p_adjusted"] = row.p_adjusted;
      x["band"] = row.band;
      x["runs"] = {{"baseline", row.runs_baseline}, {"candidate", row.runs_candidate}, {"needed", row.runs_needed}};
    }
    j["rows"].push_back(x);
  }
  return j;
}

// ---- baselines --------------------------------------------------------------------

std::string baseline_name(const std::string& device) {
  std::string out;
  for (char ch : device) {
    const unsigned char u = static_cast<unsigned char>(ch);
    if (std::isalnum(u)) out += static_cast<char>(std::tolower(u));
    else if (!out.empty() && out.back() != '-') out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "unknown" : out;
}

ResultsFile make_baseline(const ResultsFile& candidate, const std::optional<ResultsFile>& previous,
                          const BaselineStamp& stamp) {
  int failed_checks = 0;
  std::string first;
  for (const auto& p : candidate.points) {
    if (p.check && !p.check->ok) {
      if (!failed_checks++) first = p.id;
    }
  }
  if (failed_checks) {
    throw ConfigError("refusing to make a baseline of results whose check failed at " + std::to_string(failed_checks) +
                      " point(s), first '" + first + "'");
  }
  if (previous) refuse_different_machines(previous->run, candidate.run);
  ResultsFile out = candidate;
  nlohmann::json s = {{"updated_by", stamp.who},
                      {"updated_utc", stamp.when},
                      {"commit", stamp.commit},
                      {"reason", stamp.reason}};
  if (previous) {
    s["previous"] = previous->run.extra.contains("baseline")
                        ? previous->run.extra["baseline"]
                        : nlohmann::json{{"commit", previous->run.git_commit}, {"updated_utc", previous->run.started_utc}};
    s["previous"].erase("previous");  // one level of history; git keeps the rest
  }
  out.run.extra["baseline"] = s;
  return out;
}

}  // namespace seqscale
