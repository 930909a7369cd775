// seqscale bench: expand a matrix, run its points (isolated, resumable), write DIR/results.json.
//   seqscale bench --matrix layernorm --out out/ln [--filter REGEX] [--dry-run]
//   seqscale bench --suite collectives --out out/coll      (matrix named after the suite)
#include <cstdlib>
#include <iostream>
#include <optional>
#include <regex>

#include <nlohmann/json.hpp>

#include "harness/bench/pricing.h"
#include "harness/cli/verb.h"
#include "harness/maxseq.h"
#include "harness/rank_context.h"
#include "harness/runner.h"
#include "model/calibration.h"
#include "workloads/config_error.h"
#include "workloads/specs.h"

namespace seqscale::cli {
namespace {

Isolation parse_isolation(const std::string& s) {
  if (s == "worker") return Isolation::kWorker;
  if (s == "process") return Isolation::kProcess;
  if (s == "none") return Isolation::kNone;
  throw UsageError("seqscale bench: --isolation is '" + s + "', must be worker, process or none");
}

int run_bench(const std::vector<std::string>& args) {
  po::options_description opts;
  std::string matrix_name, suite, out_dir, filter, isolation;
  opts.add_options()
    ("matrix", po::value(&matrix_name), "matrix name (workloads/matrices/NAME.json) or path")
    ("suite", po::value(&suite), "only points of this suite; alone, runs the matrix named after it")
    ("out", po::value(&out_dir), "output directory (results.json is written and resumed there)")
    ("filter", po::value(&filter), "regex on point ids (suite/bench/backend/axis=value,...)")
    ("dry-run", "list the points and exit")
    ("check-only", "run each point's one checked call against its CPU reference and skip the timing "
     "(fastest way to learn which kernels are right on a new device)")
    ("no-check", "skip the checked call before timing (huge shapes whose CPU reference is too slow)")
    ("comm-timeout-s", po::value<double>(), "abort a collective that has not finished after this many seconds "
     "(default 300, or SEQSCALE_COMM_TIMEOUT_S); short on a lent GPU so a hang costs seconds")
    ("retry-failed", "rerun points recorded as failed")
    ("isolation", po::value(&isolation)->default_value("worker"),
     "worker (child process, replaced after a crash), process (one per point) or none")
    ("source", po::value<std::string>()->default_value("measured"),
     "measured (run the points) or model (price them with the cost model)")
    ("cluster", po::value<std::string>(), "with --source model: the cluster whose GPU is priced")
    ("calibration", po::value<std::string>(), "with --source model: calibration file (default: documented defaults)")
    ("maxseq", po::value<std::string>(), "bisect this axis (e.g. L, seq) for the largest value that fits "
     "on this hardware; with --cluster also the model's prediction; writes DIR/maxseq.json")
    ("json", "print the run summary as JSON");
  po::variables_map vm;
  if (!parse_args("bench", args, opts, vm, nullptr, "--matrix M --out DIR [options]")) return 0;
  if (matrix_name.empty() && suite.empty()) throw UsageError("seqscale bench: --matrix or --suite is required");
  if (matrix_name.empty()) matrix_name = suite;
  if (out_dir.empty() && !vm.count("dry-run")) throw UsageError("seqscale bench: --out is required");

  if (vm.count("comm-timeout-s")) {
    const double t = vm["comm-timeout-s"].as<double>();
    if (!(t > 0 && t <= 86400)) throw UsageError("seqscale bench: --comm-timeout-s must be in (0, 86400] seconds");
    // The communicators read it from the environment, in this process and in its workers.
    ::setenv("SEQSCALE_COMM_TIMEOUT_S", std::to_string(t).c_str(), 1);
  }
  Matrix matrix = load_matrix(matrix_name);
  if (vm.count("check-only") && vm.count("no-check")) throw UsageError("seqscale bench: --check-only and --no-check exclude each other");
  for (auto& p : matrix.points) {
    if (vm.count("check-only")) p.timing.check = p.timing.check_only = true;
    if (vm.count("no-check")) p.timing.check = false;
  }
  if (!suite.empty()) std::erase_if(matrix.points, [&](const MatrixPoint& p) { return p.suite != suite; });

  const std::string source = vm["source"].as<std::string>();
  if (source != "measured" && source != "model") {
    throw UsageError("seqscale bench: --source is '" + source + "', must be measured or model");
  }
  if (source == "model" && !vm.count("dry-run")) {
    if (!vm.count("cluster")) throw UsageError("seqscale bench: --source model needs --cluster");
    const ClusterSpec cluster = load_cluster(vm["cluster"].as<std::string>());
    const Calibration cal = vm.count("calibration") ? load_calibration(vm["calibration"].as<std::string>())
                                                    : default_calibration();
    ResultsFile f;
    f.run = collect_metadata("seqscale bench " + matrix_name + " --source model", false);
    f.run.device = cluster.gpu;
    f.run.extra["cluster"] = cluster.name;
    f.run.extra["calibration"] = cal.source;
    std::optional<std::regex> re;
    if (!filter.empty()) re.emplace(filter);
    for (const auto& p : matrix.points) {
      if (p.backend != "cuda" || (re && !std::regex_search(p.id, *re))) continue;
      f.points.push_back(price_point(p, cluster, cal));
    }
    write_results_atomic(f, out_dir + "/results.json");
    std::cout << "priced " << f.points.size() << " points for " << cluster.gpu << "\nresults: " << out_dir
              << "/results.json\n";
    return 0;
  }

  if (vm.count("maxseq") && !vm.count("dry-run")) {
    MaxSeqOptions mo;
    mo.axis = vm["maxseq"].as<std::string>();
    mo.run.results_path = out_dir + "/results.json";
    mo.run.isolation = parse_isolation(isolation);
    mo.run.self_exe = self_executable_path();
    mo.run.command_line = "seqscale bench --maxseq " + mo.axis + " --matrix " + matrix_name;
    if (vm.count("cluster")) mo.cluster = load_cluster(vm["cluster"].as<std::string>());
    mo.calibration = vm.count("calibration") ? load_calibration(vm["calibration"].as<std::string>())
                                             : default_calibration();
    if (!filter.empty()) {
      const std::regex re(filter);
      std::erase_if(matrix.points, [&](const MatrixPoint& p) { return !std::regex_search(p.id, re); });
    }
    const auto rows = run_maxseq(matrix, mo, std::cerr);
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : rows) out.push_back(to_json(r));
    write_text_atomic(out.dump(2) + "\n", out_dir + "/maxseq.json");
    if (vm.count("json")) {
      std::cout << out.dump(2) << "\n";
    } else {
      for (const auto& r : rows) {
        std::cout << r.bench << "/" << r.backend << " " << r.group.dump() << ": max " << r.axis << " = "
                  << (r.measured_max ? std::to_string(*r.measured_max) : "none fits") << " measured"
                  << (r.predicted_max ? ", " + std::to_string(*r.predicted_max) + " predicted" : "") << "\n";
      }
      std::cout << "maxseq: " << out_dir << "/maxseq.json\n";
    }
    return 0;
  }

  RunOptions ro;
  ro.results_path = out_dir + "/results.json";
  ro.filter = filter;
  ro.dry_run = vm.count("dry-run") > 0;
  ro.retry_failed = vm.count("retry-failed") > 0;
  ro.isolation = parse_isolation(isolation);
  ro.self_exe = self_executable_path();
  ro.command_line = "seqscale bench";
  for (const auto& a : args) ro.command_line += " " + a;

  const RunSummary s = run_matrix(matrix, ro, ro.dry_run ? std::cout : std::cerr);
  if (ro.dry_run) return 0;
  if (RankContext* ranks = rank_context(); ranks && ranks->rank() != 0) return 0;  // rank 0 reports
  if (vm.count("json")) {
    std::cout << nlohmann::json{{"results", ro.results_path}, {"total", s.total}, {"ran", s.ran},
                                {"resumed", s.resumed}, {"ok", s.ok}, {"oom", s.oom},
                                {"failed", s.failed}, {"skipped", s.skipped}, {"wall_s", s.wall_s}}.dump()
              << "\n";
  } else {
    std::cout << "bench " << matrix.name << ": " << s.total << " points, " << s.ran << " run, "
              << s.resumed << " resumed; ok " << s.ok << ", oom " << s.oom << ", failed " << s.failed
              << ", skipped " << s.skipped << " (" << s.wall_s << " s)\nresults: " << ro.results_path << "\n";
  }
  return s.failed > 0 ? 1 : 0;
}

int run_worker(const std::vector<std::string>&) { return worker_main(); }

}  // namespace
SEQSCALE_VERB("bench", "run a benchmark matrix and write results", run_bench);
SEQSCALE_VERB("_worker", "internal: run points sent on stdin", run_worker);
}  // namespace seqscale::cli
