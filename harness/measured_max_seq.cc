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
  std::size_t lo = 0, hi = n - 1;  // invariant: lo feasible, hi infeasible
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    const auto f = feasible(mid);
    if (!f) return lo;  // interrupted: the best proven so far
    (*f ? lo : hi) = mid;
  }
  return lo;
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
    if (auto best = bisect_largest_feasible(pts.size(), probe)) {
      row.measured_max = pts[*best]->params[opt.axis].get<std::int64_t>();
    }
    if (opt.cluster) {
      auto predicted = [&](std::size_t i) -> std::optional<bool> {
        return price_point(*pts[i], *opt.cluster, opt.calibration).status == PointStatus::kOk;
      };
      if (auto best = bisect_largest_feasible(pts.size(), predicted)) {
        row.predicted_max = pts[*best]->params[opt.axis].get<std::int64_t>();
      }
    }
    rows.push_back(std::move(row));
    if (stop_requested()) break;
  }
  restore_default_handlers();
  return rows;
}

}  // namespace seqscale
