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

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

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

void count_status(RunSummary& sum, PointStatus s) {
  switch (s) {
    case PointStatus::kOk: ++sum.ok; break;
    case PointStatus::kOom: ++sum.oom; break;
    case PointStatus::kFailed: ++sum.failed; break;
    case PointStatus::kSkipped: ++sum.skipped; break;
  }
}

bool counts_as_done(const PointResult& done, const RunOptions& opt, bool check_only_run) {
  if (opt.retry_failed && done.status == PointStatus::kFailed) return false;
  // A check-only record (ok, nothing timed) does not stand for a timed run of the point.
  if (!check_only_run && done.status == PointStatus::kOk && done.samples_s.empty()) return false;
  return true;
}

// ---- selection --------------------------------------------------------------------

struct Selection {
  std::vector<const MatrixPoint*> points;
  bool any_cuda = false;
  bool check_only = false;  // some point runs its check alone
};

Selection select_points(const Matrix& matrix, const RunOptions& opt) {
  std::regex filter;
  if (!opt.filter.empty()) {
    try {
      filter = std::regex(opt.filter);
    } catch (const std::regex_error&) {
      throw ConfigError("--filter '" + opt.filter + "' is not a valid regex");
    }
  }
  Selection s;
  for (const auto& p : matrix.points) {
    if (!opt.filter.empty() && !std::regex_search(p.id, filter)) continue;
    s.points.push_back(&p);
    s.any_cuda = s.any_cuda || p.backend == "cuda";
    s.check_only = s.check_only || p.timing.check_only;
  }
  return s;
}

// ---- multi-rank: every rank runs every point together, in-process -------------------
// A worker forked from an MPI rank could not join the job, and collectives need every
// rank, so there is no isolation and no repeat here.

// Rank 0 reads the results file (resume) and tells every rank which points to skip.
std::vector<std::string> multirank_done_ids(RankContext& ranks, const RunOptions& opt, const Selection& sel,
                                            ResultsFile& results) {
  std::string skip_json = "[]";
  std::string error;
  if (ranks.rank() == 0) {
    try {
      if (std::filesystem::exists(opt.results_path)) results = read_results(opt.results_path);
      else results.run = collect_metadata(opt.command_line, sel.any_cuda);
      nlohmann::json ids = nlohmann::json::array();
      for (const auto& p : results.points) {
        if (counts_as_done(p, opt, sel.check_only)) ids.push_back(p.id);
      }
      skip_json = ids.dump();
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  error = ranks.broadcast_from_root(error);
  if (!error.empty()) throw ConfigError(error);
  return nlohmann::json::parse(ranks.broadcast_from_root(skip_json)).get<std::vector<std::string>>();
}

// run.world_size and run.ranks (host and device of every rank), on rank 0.
void describe_ranks(RankContext& ranks, const RunOptions& opt, bool any_cuda, ResultsFile& results) {
  const RunMetadata mine = collect_metadata(opt.command_line, any_cuda);
  const auto who = ranks.gather_to_root(nlohmann::json{{"host", mine.host}, {"device", mine.device}}.dump());
  if (ranks.rank() != 0) return;
  results.run.world_size = ranks.size();
  results.run.ranks = nlohmann::json::array();
  for (size_t r = 0; r < who.size(); ++r) {
    auto j = nlohmann::json::parse(who[r]);
    j["rank"] = r;
    results.run.ranks.push_back(j);
  }
}

RunSummary run_multirank(RankContext& ranks, const Selection& sel, const RunOptions& opt, std::ostream& log) {
  const auto t0 = Clock::now();
  RunSummary sum;
  sum.total = static_cast<int>(sel.points.size());
  const bool root = ranks.rank() == 0;
  ResultsFile results;
  const std::vector<std::string> skip = multirank_done_ids(ranks, opt, sel, results);
  describe_ranks(ranks, opt, sel.any_cuda, results);
  int index = 0;
  for (const auto* p : sel.points) {
    ++index;
    if (std::find(skip.begin(), skip.end(), p->id) != skip.end()) {
      ++sum.resumed;
      continue;
    }
    ranks.barrier();
    const PointResult mine = execute_point(*p);
    const auto all = ranks.gather_to_root(to_json(mine).dump());
    ++sum.ran;
    if (!root) continue;
    std::vector<PointResult> per_rank;
    for (const auto& text : all) per_rank.push_back(point_from_json(nlohmann::json::parse(text), "rank result"));
    const PointResult r = merge_rank_results(per_rank);
    count_status(sum, r.status);
    std::erase_if(results.points, [&](const PointResult& x) { return x.id == r.id; });
    results.points.push_back(r);
    write_results_atomic(results, opt.results_path);
    log << "[" << index << "/" << sum.total << "] " << status_name(r.status) << " " << r.id
        << (r.reason.empty() ? "" : "  (" + r.reason + ")") << "\n";
  }
  if (root && sum.ran == 0 && !std::filesystem::exists(opt.results_path)) write_results_atomic(results, opt.results_path);
  sum.wall_s = seconds_since(t0);
  return sum;
}

// ---- one process: each point isolated, journaled, resumable, repeatable --------------

// The results so far (file plus journal) to resume, or fresh metadata.
ResultsFile open_results(const RunOptions& opt, bool any_cuda) {
  if (!std::filesystem::exists(opt.results_path) && !std::filesystem::exists(opt.results_path + ".journal")) {
    ResultsFile fresh;
    fresh.run = collect_metadata(opt.command_line, any_cuda);
    return fresh;
  }
  ResultsFile results = load_results_and_journal(opt.results_path);  // corrupt -> ConfigError, file left alone
  const RunMetadata now = collect_metadata(opt.command_line, any_cuda);
  if (any_cuda && now.device != results.run.device && !results.run.device.starts_with("cpu:")) {
    throw ConfigError(opt.results_path + ": field 'run.device' is '" + results.run.device + "' but this machine is '" +
                      now.device + "': use another --out");
  }
  results.run.extra["resumed_utc"].push_back(now.started_utc);
  return results;
}

// Whether the point runs in round `round`: not yet recorded, recorded as failed under
// --retry-failed (once per invocation), or holding fewer runs than the rounds so far.
bool needs_run(const PointResult* done, const RunOptions& opt, bool check_only, int round, bool ran_already) {
  if (!done) return true;
  if (opt.retry_failed && done->status == PointStatus::kFailed && !ran_already) return true;
  if (opt.repeat <= 1) return !counts_as_done(*done, opt, check_only);
  if (done->status != PointStatus::kOk) return false;  // an OOM, failure or skip is not repeated
  return runs_recorded(*done) <= round;
}

void log_point(std::ostream& log, const std::string& progress, const PointResult& r) {
  log << progress << status_name(r.status) << " " << r.id;
  if (r.status == PointStatus::kOk && !r.samples_s.empty()) log << "  median " << r.stats.median * 1e6 << " us";
  if (r.check) log << (r.check->ok ? "  check ok" : "  CHECK FAILED") << " (max_abs_err " << r.check->max_abs_err << ")";
  if (!r.reason.empty()) log << "  (" << r.reason << ")";
  log << "\n";
}

RunSummary run_isolated(const Selection& sel, const RunOptions& opt, std::ostream& log) {
  const auto t0 = Clock::now();
  RunSummary sum;
  sum.total = static_cast<int>(sel.points.size());
  ResultsFile results = open_results(opt, sel.any_cuda);
  if (opt.repeat > 1) {
    results.run.extra["repeat"] = {{"runs", opt.repeat},
                                   {"order", "round r: rotated by floor(r/2)*n/ceil(K/2), reversed on odd rounds"}};
  }
  install_stop_handlers();
  const bool tty = isatty(2);
  const int rounds = std::max(1, opt.repeat);
  const int total_runs = sum.total * rounds;
  const auto orders = repeat_orders(sum.total, rounds);
  std::vector<bool> touched(sel.points.size(), false);
  ResultsWriter writer(opt.results_path, std::move(results));
  int done_runs = 0;
  bool stopped = false;
  for (int round = 0; round < rounds && !stopped; ++round) {
    IsolatedExecutor executor(opt.isolation, opt.self_exe);  // a fresh worker process each round
    for (const int i : orders[static_cast<size_t>(round)]) {
      const MatrixPoint& p = *sel.points[static_cast<size_t>(i)];
      ++done_runs;
      if (stop_requested()) {
        stopped = true;
        break;
      }
      const PointResult* done = writer.results().find(p.id);
      const bool ran_already = touched[static_cast<size_t>(i)];
      if (!needs_run(done, opt, p.timing.check_only, round, ran_already)) {
        ++sum.resumed;
        continue;
      }
      const double elapsed = seconds_since(t0);
      const double eta = sum.ran > 0 ? elapsed / sum.ran * (total_runs - done_runs + 1) : 0;
      std::string progress = "[" + std::to_string(done_runs) + "/" + std::to_string(total_runs) + "] ";
      if (rounds > 1) progress += "run " + std::to_string(round + 1) + "/" + std::to_string(rounds) + " ";
      if (tty) {
        log << "\r\033[K" << progress << format_duration(elapsed) << " elapsed, ETA " << format_duration(eta) << "  "
            << p.id << std::flush;
      }
      const std::optional<PointResult> ran = executor.run(p);
      if (!ran) {
        stopped = true;
        break;
      }
      ++sum.ran;
      touched[static_cast<size_t>(i)] = true;
      const bool fresh = !done || (done->status == PointStatus::kFailed && !ran_already);  // --retry-failed
      const PointResult r = rounds > 1 ? add_run(fresh ? nullptr : done, *ran, round + 1) : *ran;
      writer.add(r);
      if (!tty) log_point(log, progress, *ran);
    }
  }
  if (tty) log << "\r\033[K";
  writer.compact();
  for (size_t i = 0; i < sel.points.size(); ++i) {
    if (touched[i]) count_status(sum, writer.results().find(sel.points[i]->id)->status);
  }
  sum.wall_s = seconds_since(t0);
  restore_default_handlers();
  return sum;
}

}  // namespace

int runs_recorded(const PointResult& p) {
  if (!p.runs_median_s.empty()) return static_cast<int>(p.runs_median_s.size());
  return p.samples_s.empty() ? 0 : 1;
}

std::vector<std::vector<int>> repeat_orders(int n, int k) {
  std::vector<std::vector<int>> orders;
  const int pairs = (k + 1) / 2;
  for (int r = 0; r < k; ++r) {
    std::vector<int> order(static_cast<size_t>(std::max(0, n)));
    const int shift = n > 0 ? (r / 2) * n / pairs : 0;
    for (int i = 0; i < n; ++i) order[static_cast<size_t>(i)] = (i + shift) % n;
    if (r % 2) std::reverse(order.begin(), order.end());
    orders.push_back(std::move(order));
  }
  return orders;
}

PointResult add_run(const PointResult* earlier, const PointResult& run, int run_number) {
  const auto tagged = [&](PointResult r) {
    if (r.status != PointStatus::kOk) {
      r.reason = "run " + std::to_string(run_number) + ": " + r.reason;
      r.samples_s.clear();
      r.runs_median_s.clear();
    } else {
      r.runs_median_s = {r.samples_s.empty() ? 0 : median_of(r.samples_s)};
    }
    finalize_point(r);
    return r;
  };
  if (!earlier || runs_recorded(*earlier) == 0) return tagged(run);
  if (severity(run.status) > severity(earlier->status)) {
    PointResult r = tagged(run);
    r.wall_s += earlier->wall_s;
    return r;
  }
  if (earlier->status != PointStatus::kOk) return *earlier;
  PointResult merged = *earlier;
  if (merged.runs_median_s.empty()) merged.runs_median_s = {median_of(merged.samples_s)};
  const double first_median = merged.stats.median;
  merged.samples_s.insert(merged.samples_s.end(), run.samples_s.begin(), run.samples_s.end());
  merged.runs_median_s.push_back(median_of(run.samples_s));
  merged.wall_s += run.wall_s;
  for (const auto& [key, value] : run.metrics) {
    // Memory and counters: the worst run; rates and times are recomputed below.
    if (key.ends_with("_bytes") || key == "wrong_elements" || key == "cupti_fallback_samples") {
      merged.metrics[key] = std::max(merged.metrics.count(key) ? merged.metrics[key] : 0.0, value);
    }
  }
  if (run.check && (!merged.check || (!run.check->ok && merged.check->ok))) merged.check = run.check;
  if (merged.timing != run.timing) merged.timing = "events";  // a CUPTI miss in one run: not all CUPTI
  finalize_point(merged);  // GBps, TFLOPs, tokens/s, MFU from the median over every run
  // Bandwidths and times the benchmark computed itself (collectives) follow the median.
  if (first_median > 0 && merged.stats.median > 0) {
    const double slower = merged.stats.median / first_median;
    for (auto& [key, value] : merged.metrics) {
      if (key == "busbw_GBps" || key == "algbw_GBps") value /= slower;
      if (key == "time_us") value *= slower;
    }
  }
  return merged;
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
  const Selection sel = select_points(matrix, opt);
  if (opt.dry_run) {
    for (const auto* p : sel.points) log << p->id << "\n";
    RunSummary listed;
    listed.total = static_cast<int>(sel.points.size());
    return listed;
  }
  if (RankContext* ranks = rank_context()) {
    if (opt.repeat > 1) {
      throw ConfigError("--repeat runs each round in a fresh process, which a multi-rank job cannot spawn: "
                        "launch the job once per run instead");
    }
    return run_multirank(*ranks, sel, opt, log);
  }
  if (opt.repeat > 1 && opt.isolation == Isolation::kNone) {
    throw ConfigError("--repeat needs --isolation worker or process: the runs must be separate processes");
  }
  return run_isolated(sel, opt, log);
}

}  // namespace seqscale
