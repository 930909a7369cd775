#include "harness/measured_max_seq.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <ostream>

#include "harness/bench/pricing.h"
#include "workloads/config_error.h"

namespace seqscale {

std::optional<std::size_t> bisect_largest_feasible(
    std::size_t n, const std::function<std::optional<bool>(std::size_t)>& feasible) {
  if (n == 0) return std::nullopt;
  const auto first = feasible(0);
  if (!first || !*first) return std::nullopt;
  const auto last = feasible(n - 1);
  if (!last) return std::nullopt;
  if (*last) return n - 1;
  return bisect_between(0, n - 1, feasible);
}

std::optional<std::size_t> bisect_between(std::size_t lo, std::size_t hi,
                                          const std::function<std::optional<bool>(std::size_t)>& feasible) {
  while (hi - lo > 1) {  // invariant: lo feasible, hi infeasible
    const std::size_t mid = lo + (hi - lo) / 2;
    const auto f = feasible(mid);
    if (!f) return lo;  // interrupted: the best proven so far
    (*f ? lo : hi) = mid;
  }
  return lo;
}

std::optional<std::size_t> search_largest_feasible_from(
    std::size_t n, std::size_t hint, const std::function<std::optional<bool>(std::size_t)>& feasible) {
  if (n == 0) return std::nullopt;
  hint = std::min(hint, n - 1);
  const auto at_hint = feasible(hint);
  if (!at_hint) return std::nullopt;
  if (*at_hint) {
    // Gallop up from the hint (1, 2, 4, ... grid steps) until a probe fails or the grid ends.
    std::size_t lo = hint;
    for (std::size_t step = 1;; step *= 2) {
      if (lo == n - 1) return lo;
      const std::size_t next = std::min(n - 1, lo + step);
      const auto f = feasible(next);
      if (!f) return lo;
      if (!*f) return bisect_between(lo, next, feasible);
      lo = next;
    }
  }
  // Gallop down from the hint until a probe fits or the grid's first value fails too.
  std::size_t hi = hint;
  for (std::size_t step = 1;; step *= 2) {
    if (hi == 0) return std::nullopt;
    const std::size_t next = hi > step ? hi - step : 0;
    const auto f = feasible(next);
    if (!f) return std::nullopt;
    if (*f) return bisect_between(next, hi, feasible);
    hi = next;
  }
}

nlohmann::json to_json(const MeasuredMaxSeq& r) {
  nlohmann::json j = {{"bench", r.bench}, {"backend", r.backend}, {"axis", r.axis}, {"group", r.group},
                      {"probes", r.probes}, {"first_infeasible_reason", r.first_infeasible_reason}};
  j["measured_max"] = r.measured_max ? nlohmann::json(*r.measured_max) : nlohmann::json(nullptr);
  j["predicted_max"] = r.predicted_max ? nlohmann::json(*r.predicted_max) : nlohmann::json(nullptr);
  return j;
}

std::vector<MeasuredMaxSeq> measure_max_sequence(const Matrix& matrix, const MeasureMaxSeqOptions& opt,
                                                 std::ostream& log) {
  // Group the points by everything except the searched axis.
  std::map<std::string, std::vector<const MatrixPoint*>> groups;
  for (const auto& p : matrix.points) {
    if (!p.params.contains(opt.axis)) {
      throw ConfigError(matrix.source + ": point '" + p.id + "' has no axis '" + opt.axis + "' to search");
    }
    if (!p.params[opt.axis].is_number_integer()) {
      throw ConfigError(matrix.source + ": axis '" + opt.axis + "' must hold integers to be searched");
    }
    nlohmann::json rest = p.params;
    rest.erase(opt.axis);
    groups[p.bench + "/" + p.backend + "/" + rest.dump()].push_back(&p);
  }
  ResultsFile results;
  if (std::filesystem::exists(opt.run.results_path)) results = read_results(opt.run.results_path);
  else results.run = collect_metadata(opt.run.command_line, true);
  install_stop_handlers();
  IsolatedExecutor executor(opt.run.isolation, opt.run.self_exe);
  std::vector<MeasuredMaxSeq> rows;
  for (auto& [key, pts] : groups) {
    std::sort(pts.begin(), pts.end(), [&](const MatrixPoint* a, const MatrixPoint* b) {
      return a->params[opt.axis].get<std::int64_t>() < b->params[opt.axis].get<std::int64_t>();
    });
    MeasuredMaxSeq row;
    row.bench = pts[0]->bench;
    row.backend = pts[0]->backend;
    row.axis = opt.axis;
    row.group = pts[0]->params;
    row.group.erase(opt.axis);
    auto probe = [&](std::size_t i) -> std::optional<bool> {
      const MatrixPoint& p = *pts[i];
      const PointResult* done = results.find(p.id);
      PointResult r;
      if (done) {
        r = *done;
      } else {
        if (stop_requested()) return std::nullopt;
        const auto ran = executor.run(p);
        if (!ran) return std::nullopt;
        r = *ran;
        results.points.push_back(r);
        write_results_atomic(results, opt.run.results_path);
      }
      const std::int64_t v = p.params[opt.axis].get<std::int64_t>();
      row.probes.push_back({{"value", v}, {"status", status_name(r.status)}, {"reason", r.reason}});
      log << "bisect " << key << " " << opt.axis << "=" << v << ": " << status_name(r.status) << "\n";
      const bool ok = r.status == PointStatus::kOk;
      if (!ok && row.first_infeasible_reason.empty()) row.first_infeasible_reason = r.reason;
      return ok;
    };
    // The model's answer first (pricing runs nothing): the hardware search starts there.
    std::optional<std::size_t> predicted_index;
    if (opt.cluster) {
      auto predicted = [&](std::size_t i) -> std::optional<bool> {
        return price_point(*pts[i], *opt.cluster, opt.calibration).status == PointStatus::kOk;
      };
      predicted_index = bisect_largest_feasible(pts.size(), predicted);
      if (predicted_index) row.predicted_max = pts[*predicted_index]->params[opt.axis].get<std::int64_t>();
    }
    // Measured: the largest grid value that ran while the next one was OOM, both probed on
    // the hardware. Started at the prediction, the search costs two probes when the model
    // is right and galloping plus bisection when it is not, so it can disagree at any size.
    const auto best = predicted_index ? search_largest_feasible_from(pts.size(), *predicted_index, probe)
                                      : bisect_largest_feasible(pts.size(), probe);
    if (best) row.measured_max = pts[*best]->params[opt.axis].get<std::int64_t>();
    rows.push_back(std::move(row));
    if (stop_requested()) break;
  }
  restore_default_handlers();
  return rows;
}

}  // namespace seqscale
