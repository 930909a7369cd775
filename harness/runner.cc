#include "harness/runner.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <regex>

#include "harness/bench/execute.h"
#include "harness/rank_context.h"
#include "harness/results/results_writer.h"
#include "workloads/config_error.h"

namespace seqscale {
namespace {

using Clock = std::chrono::steady_clock;

std::string format_duration(double s) {
  const auto total = static_cast<long>(s);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", total / 3600, (total / 60) % 60, total % 60);
  return buf;
}


int severity(PointStatus s) {
  switch (s) {
    case PointStatus::kFailed: return 3;
    case PointStatus::kOom: return 2;
    case PointStatus::kSkipped: return 1;
    case PointStatus::kOk: return 0;
  }
  return 0;
}


}  // namespace

static bool counts_as_done(const PointResult& done, const RunOptions& opt, bool check_only_run) {
  if (opt.retry_failed && done.status == PointStatus::kFailed) return false;
  // A check-only record (ok, nothing timed) does not stand for a timed run of the point.
  if (!check_only_run && done.status == PointStatus::kOk && done.samples_s.empty()) return false;
  return true;
}

PointResult merge_rank_results(const std::vector<PointResult>& per_rank) {
  PointResult merged = per_rank.at(0);
  for (size_t r = 1; r < per_rank.size(); ++r) {
    const PointResult& x = per_rank[r];
    if (severity(x.status) > severity(merged.status)) {
      merged.status = x.status;
      merged.reason = "rank " + std::to_string(r) + ": " + x.reason;
      merged.samples_s.clear();
    }
    if (merged.status == PointStatus::kOk && x.samples_s.size() == merged.samples_s.size()) {
      for (size_t i = 0; i < x.samples_s.size(); ++i) merged.samples_s[i] = std::max(merged.samples_s[i], x.samples_s[i]);
    }
    for (const char* key : {"peak_bytes", "baseline_bytes"}) {
      if (auto it = x.metrics.find(key); it != x.metrics.end()) {
        merged.metrics[key] = std::max(merged.metrics.count(key) ? merged.metrics[key] : 0.0, it->second);
      }
    }
    if (x.check && (!merged.check || (!x.check->ok && merged.check->ok))) merged.check = x.check;
    merged.wall_s = std::max(merged.wall_s, x.wall_s);
  }
  if (merged.status != PointStatus::kOk) merged.samples_s.clear();
  finalize_point(merged);
  return merged;
}


RunSummary run_matrix(const Matrix& matrix, const RunOptions& opt, std::ostream& log) {
  RunSummary sum;
  const auto t0 = Clock::now();
  std::vector<const MatrixPoint*> selected;
  std::regex filter;
  if (!opt.filter.empty()) {
    try {
      filter = std::regex(opt.filter);
    } catch (const std::regex_error& e) {
      throw ConfigError("--filter '" + opt.filter + "' is not a valid regex");
    }
  }
  for (const auto& p : matrix.points) {
    if (opt.filter.empty() || std::regex_search(p.id, filter)) selected.push_back(&p);
  }
  sum.total = static_cast<int>(selected.size());
  if (opt.dry_run) {
    for (const auto* p : selected) log << p->id << "\n";
    return sum;
  }

  bool any_cuda = false, check_only_run = false;
  for (const auto* p : selected) {
    any_cuda = any_cuda || p->backend == "cuda";
    check_only_run = check_only_run || p->timing.check_only;
  }
  RankContext* ranks = rank_context();
  const bool root = !ranks || ranks->rank() == 0;
  ResultsFile results;
  if (ranks) {
    // Every rank runs every point together (collectives need all of them) in-process:
    // a worker forked from an MPI rank could not join the job.
    std::string skip_json = "[]";
    std::string error;
    if (root) {
      try {
        if (std::filesystem::exists(opt.results_path)) results = read_results(opt.results_path);
        else results.run = collect_metadata(opt.command_line, any_cuda);
        nlohmann::json ids = nlohmann::json::array();
        for (const auto& p : results.points) {
          if (counts_as_done(p, opt, check_only_run)) ids.push_back(p.id);
        }
        skip_json = ids.dump();
      } catch (const std::exception& e) {
        error = e.what();
      }
    }
    error = ranks->broadcast_from_root(error);
    if (!error.empty()) throw ConfigError(error);
    const auto skip = nlohmann::json::parse(ranks->broadcast_from_root(skip_json));
    const RunMetadata mine = collect_metadata(opt.command_line, any_cuda);
    const auto who = ranks->gather_to_root(nlohmann::json{{"host", mine.host}, {"device", mine.device}}.dump());
    if (root) {
      results.run.world_size = ranks->size();
      results.run.ranks = nlohmann::json::array();
      for (size_t r = 0; r < who.size(); ++r) {
        auto j = nlohmann::json::parse(who[r]);
        j["rank"] = r;
        results.run.ranks.push_back(j);
      }
    }
    int index = 0;
    for (const auto* p : selected) {
      ++index;
      if (std::find(skip.begin(), skip.end(), p->id) != skip.end()) {
        ++sum.resumed;
        continue;
      }
      ranks->barrier();
      const PointResult mine_r = execute_point(*p);
      const auto all = ranks->gather_to_root(to_json(mine_r).dump());
      ++sum.ran;
      if (!root) continue;
      std::vector<PointResult> per_rank;
      for (const auto& text : all) per_rank.push_back(point_from_json(nlohmann::json::parse(text), "rank result"));
      const PointResult r = merge_rank_results(per_rank);
      switch (r.status) {
        case PointStatus::kOk: ++sum.ok; break;
        case PointStatus::kOom: ++sum.oom; break;
        case PointStatus::kFailed: ++sum.failed; break;
        case PointStatus::kSkipped: ++sum.skipped; break;
      }
      std::erase_if(results.points, [&](const PointResult& x) { return x.id == r.id; });
      results.points.push_back(r);
      write_results_atomic(results, opt.results_path);
      log << "[" << index << "/" << sum.total << "] " << status_name(r.status) << " " << r.id
          << (r.reason.empty() ? "" : "  (" + r.reason + ")") << "\n";
    }
    if (root && sum.ran == 0 && !std::filesystem::exists(opt.results_path)) write_results_atomic(results, opt.results_path);
    sum.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
    return sum;
  }
  if (std::filesystem::exists(opt.results_path) || std::filesystem::exists(opt.results_path + ".journal")) {
    results = load_results_and_journal(opt.results_path);  // corrupt -> ConfigError, file left alone
    const RunMetadata now = collect_metadata(opt.command_line, any_cuda);
    if (any_cuda && now.device != results.run.device && !results.run.device.starts_with("cpu:")) {
      throw ConfigError(opt.results_path + ": field 'run.device' is '" + results.run.device +
                        "' but this machine is '" + now.device + "': use another --out");
    }
    results.run.extra["resumed_utc"].push_back(now.started_utc);
  } else {
    results.run = collect_metadata(opt.command_line, any_cuda);
  }

  install_stop_handlers();
  const bool tty = isatty(2);
  IsolatedExecutor executor(opt.isolation, opt.self_exe);
  ResultsWriter writer(opt.results_path, std::move(results));
  int index = 0;
  for (const auto* p : selected) {
    ++index;
    if (stop_requested()) break;
    if (const PointResult* done = writer.results().find(p->id); done && counts_as_done(*done, opt, p->timing.check_only)) {
      ++sum.resumed;
      continue;
    }
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    const double eta = sum.ran > 0 ? elapsed / sum.ran * (sum.total - index + 1) : 0;
    if (tty) {
      log << "\r\033[K[" << index << "/" << sum.total << "] " << format_duration(elapsed) << " elapsed, ETA "
          << format_duration(eta) << "  " << p->id << std::flush;
    }
    const std::optional<PointResult> ran = executor.run(*p);
    if (!ran) break;
    const PointResult& r = *ran;
    ++sum.ran;
    switch (r.status) {
      case PointStatus::kOk: ++sum.ok; break;
      case PointStatus::kOom: ++sum.oom; break;
      case PointStatus::kFailed: ++sum.failed; break;
      case PointStatus::kSkipped: ++sum.skipped; break;
    }
    writer.add(r);
    if (!tty) {
      log << "[" << index << "/" << sum.total << "] " << status_name(r.status) << " " << r.id;
      if (r.status == PointStatus::kOk && !r.samples_s.empty()) log << "  median " << r.stats.median * 1e6 << " us";
      if (r.check) log << (r.check->ok ? "  check ok" : "  CHECK FAILED") << " (max_abs_err " << r.check->max_abs_err << ")";
      if (!r.reason.empty()) log << "  (" << r.reason << ")";
      log << "\n";
    }
  }
  if (tty) log << "\r\033[K";
  writer.compact();
  sum.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  restore_default_handlers();
  return sum;
}


}  // namespace seqscale
