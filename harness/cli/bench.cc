// seqscale bench: expand a matrix, run its points (isolated, resumable), write DIR/results.json.
//   seqscale bench --matrix layernorm --out out/ln [--filter REGEX] [--dry-run]
//   seqscale bench --matrix layernorm --out out/ln --repeat 5   (5 independent runs: what gate needs)
//   seqscale bench --suite collectives --out out/coll      (matrix named after the suite)
// Three modes, one function each: measure (run_measured), price with the cost model
// (--source model: run_priced) and bisect an axis on the hardware (--maxseq: run_bisection).
#include <cstdlib>
#include <iostream>
#include <optional>
#include <regex>

#include <nlohmann/json.hpp>

#include "harness/bench/pricing.h"
#include "harness/cli/verb.h"
#include "harness/measured_max_seq.h"
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

struct BenchArgs {
  std::string matrix_name, suite, out_dir, filter, isolation, source;
  int repeat = 1;
  po::variables_map vm;
  std::vector<std::string> argv;
  bool has(const char* flag) const { return vm.count(flag) > 0; }
};

Calibration calibration_of(const BenchArgs& a) {
  return a.has("calibration") ? load_calibration(a.vm["calibration"].as<std::string>()) : default_calibration();
}

// Parses and checks the flags; false when --help was printed.
bool parse_bench_args(const std::vector<std::string>& args, BenchArgs& a) {
  po::options_description opts;
  opts.add_options()
    ("matrix", po::value(&a.matrix_name), "matrix name (workloads/matrices/NAME.json) or path")
    ("suite", po::value(&a.suite), "only points of this suite; alone, runs the matrix named after it")
    ("out", po::value(&a.out_dir), "output directory (results.json is written and resumed there)")
    ("filter", po::value(&a.filter), "regex on point ids (suite/bench/backend/axis=value,...)")
    ("dry-run", "list the points and exit")
    ("repeat", po::value(&a.repeat)->default_value(1),
     "run the matrix this many times, each run a separate process, the points interleaved (rotated, "
     "reversed every other run) so drift spreads evenly; records each run's median (runs_median_s), "
     "which `seqscale gate` compares; 5 or more for a gate")
    ("check-only", "run each point's one checked call against its CPU reference and skip the timing "
     "(fastest way to learn which kernels are right on a new device)")
    ("no-check", "skip the checked call before timing (huge shapes whose CPU reference is too slow)")
    ("comm-timeout-s", po::value<double>(), "abort a collective that has not finished after this many seconds "
     "(default 300, or SEQSCALE_COMM_TIMEOUT_S); short on a lent GPU so a hang costs seconds")
    ("retry-failed", "rerun points recorded as failed")
    ("isolation", po::value(&a.isolation)->default_value("worker"),
     "worker (child process, replaced after a crash), process (one per point) or none")
    ("source", po::value(&a.source)->default_value("measured"),
     "measured (run the points) or model (price them with the cost model)")
    ("cluster", po::value<std::string>(), "with --source model: the cluster whose GPU is priced")
    ("calibration", po::value<std::string>(), "with --source model: calibration file (default: documented defaults)")
    ("maxseq", po::value<std::string>(), "bisect this axis (e.g. L, seq) for the largest value that fits "
     "on this hardware; with --cluster also the model's prediction; writes DIR/measured_max_seq.json")
    ("json", "print the run summary as JSON");
  if (!parse_args("bench", args, opts, a.vm, nullptr, "--matrix M --out DIR [options]")) return false;
  a.argv = args;
  if (a.matrix_name.empty() && a.suite.empty()) throw UsageError("seqscale bench: --matrix or --suite is required");
  if (a.matrix_name.empty()) a.matrix_name = a.suite;
  if (a.out_dir.empty() && !a.has("dry-run")) throw UsageError("seqscale bench: --out is required");
  if (a.has("check-only") && a.has("no-check")) throw UsageError("seqscale bench: --check-only and --no-check exclude each other");
  if (a.source != "measured" && a.source != "model") {
    throw UsageError("seqscale bench: --source is '" + a.source + "', must be measured or model");
  }
  if (a.repeat < 1 || a.repeat > 1000) throw UsageError("seqscale bench: --repeat must be in [1, 1000]");
  if (a.repeat > 1) {
    if (a.source == "model") throw UsageError("seqscale bench: --repeat measures; --source model is deterministic");
    if (a.has("maxseq")) throw UsageError("seqscale bench: --repeat does not apply to --maxseq");
    if (a.has("check-only")) throw UsageError("seqscale bench: --repeat times the points; --check-only does not");
    if (a.isolation == "none") throw UsageError("seqscale bench: --repeat needs --isolation worker or process (separate processes)");
  }
  if (a.has("comm-timeout-s")) {
    const double t = a.vm["comm-timeout-s"].as<double>();
    if (!(t > 0 && t <= 86400)) throw UsageError("seqscale bench: --comm-timeout-s must be in (0, 86400] seconds");
    // The communicators read it from the environment, in this process and in its workers.
    ::setenv("SEQSCALE_COMM_TIMEOUT_S", std::to_string(t).c_str(), 1);
  }
  return true;
}

// The matrix with the check flags applied and, with --suite, only that suite's points.
Matrix load_bench_matrix(const BenchArgs& a) {
  Matrix matrix = load_matrix(a.matrix_name);
  for (auto& p : matrix.points) {
    if (a.has("check-only")) p.timing.check = p.timing.check_only = true;
    if (a.has("no-check")) p.timing.check = false;
  }
  if (!a.suite.empty()) std::erase_if(matrix.points, [&](const MatrixPoint& p) { return p.suite != a.suite; });
  return matrix;
}

// --source model: every CUDA point priced by the cost model, in one results file.
int run_priced(const BenchArgs& a, const Matrix& matrix) {
  if (!a.has("cluster")) throw UsageError("seqscale bench: --source model needs --cluster");
  const ClusterSpec cluster = load_cluster(a.vm["cluster"].as<std::string>());
  const Calibration cal = calibration_of(a);
  ResultsFile f;
  f.run = collect_metadata("seqscale bench " + a.matrix_name + " --source model", false);
  f.run.device = cluster.gpu;
  f.run.extra["cluster"] = cluster.name;
  f.run.extra["calibration"] = cal.source;
  std::optional<std::regex> re;
  if (!a.filter.empty()) re.emplace(a.filter);
  for (const auto& p : matrix.points) {
    if (p.backend != "cuda" || (re && !std::regex_search(p.id, *re))) continue;
    f.points.push_back(price_point(p, cluster, cal));
  }
  write_results_atomic(f, a.out_dir + "/results.json");
  std::cout << "priced " << f.points.size() << " points for " << cluster.gpu << "\nresults: " << a.out_dir
            << "/results.json\n";
  return 0;
}

// --maxseq AXIS: bisect the axis on this hardware (and, with --cluster, the model's answer).
int run_bisection(const BenchArgs& a, Matrix matrix) {
  MeasureMaxSeqOptions mo;
  mo.axis = a.vm["maxseq"].as<std::string>();
  mo.run.results_path = a.out_dir + "/results.json";
  mo.run.isolation = parse_isolation(a.isolation);
  mo.run.self_exe = self_executable_path();
  mo.run.command_line = "seqscale bench --maxseq " + mo.axis + " --matrix " + a.matrix_name;
  if (a.has("cluster")) mo.cluster = load_cluster(a.vm["cluster"].as<std::string>());
  mo.calibration = calibration_of(a);
  if (!a.filter.empty()) {
    const std::regex re(a.filter);
    std::erase_if(matrix.points, [&](const MatrixPoint& p) { return !std::regex_search(p.id, re); });
  }
  const auto rows = measure_max_sequence(matrix, mo, std::cerr);
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) out.push_back(to_json(r));
  write_text_atomic(out.dump(2) + "\n", a.out_dir + "/measured_max_seq.json");
  if (a.has("json")) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  for (const auto& r : rows) {
    std::cout << r.bench << "/" << r.backend << " " << r.group.dump() << ": max " << r.axis << " = "
              << (r.measured_max ? std::to_string(*r.measured_max) : "none fits") << " measured"
              << (r.predicted_max ? ", " + std::to_string(*r.predicted_max) + " predicted" : "") << "\n";
  }
  std::cout << "measured max: " << a.out_dir << "/measured_max_seq.json\n";
  return 0;
}

// Measure: run the points (isolated, resumable, --repeat times) and summarise.
int run_measured(const BenchArgs& a, const Matrix& matrix) {
  RunOptions ro;
  ro.results_path = a.out_dir + "/results.json";
  ro.filter = a.filter;
  ro.dry_run = a.has("dry-run");
  ro.retry_failed = a.has("retry-failed");
  ro.isolation = parse_isolation(a.isolation);
  ro.self_exe = self_executable_path();
  ro.repeat = a.repeat;
  ro.command_line = "seqscale bench";
  for (const auto& arg : a.argv) ro.command_line += " " + arg;

  const RunSummary s = run_matrix(matrix, ro, ro.dry_run ? std::cout : std::cerr);
  if (ro.dry_run) return 0;
  if (RankContext* ranks = rank_context(); ranks && ranks->rank() != 0) return 0;  // rank 0 reports
  if (a.has("json")) {
    std::cout << nlohmann::json{{"results", ro.results_path}, {"total", s.total}, {"ran", s.ran},
                                {"resumed", s.resumed}, {"ok", s.ok}, {"oom", s.oom},
                                {"failed", s.failed}, {"skipped", s.skipped}, {"repeat", a.repeat},
                                {"wall_s", s.wall_s}}.dump()
              << "\n";
  } else {
    std::cout << "bench " << matrix.name << ": " << s.total << " points, " << s.ran << " run"
              << (a.repeat > 1 ? "s (" + std::to_string(a.repeat) + " per point)" : "") << ", " << s.resumed
              << " resumed; ok " << s.ok << ", oom " << s.oom << ", failed " << s.failed << ", skipped " << s.skipped
              << " (" << s.wall_s << " s)\nresults: " << ro.results_path << "\n";
  }
  return s.failed > 0 ? 1 : 0;
}

int run_bench(const std::vector<std::string>& args) {
  BenchArgs a;
  if (!parse_bench_args(args, a)) return 0;
  Matrix matrix = load_bench_matrix(a);
  if (a.source == "model" && !a.has("dry-run")) return run_priced(a, matrix);
  if (a.has("maxseq") && !a.has("dry-run")) return run_bisection(a, std::move(matrix));
  return run_measured(a, matrix);
}

int run_worker(const std::vector<std::string>&) { return worker_main(); }

}  // namespace
SEQSCALE_VERB("bench", "run a benchmark matrix and write results", run_bench);
SEQSCALE_VERB("_worker", "internal: run points sent on stdin", run_worker);
}  // namespace seqscale::cli
