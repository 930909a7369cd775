// Runs an expanded matrix: isolation (each point in a worker process that is replaced
// when a point crashes, hangs or leaves a sticky CUDA error), per-point timeout, resume
// (finished points in the results file are skipped), atomic write after every point,
// progress on a terminal or plain log lines otherwise.
#pragma once
#include <iosfwd>
#include <string>
#include <vector>

#include "harness/isolation.h"
#include "harness/matrix/matrix.h"
#include "harness/results/results.h"

namespace seqscale {

struct RunOptions {
  std::string results_path;   // DIR/results.json
  std::string filter;         // ECMAScript regex on point ids; empty = all
  bool dry_run = false;
  bool retry_failed = false;  // rerun points recorded as failed
  Isolation isolation = Isolation::kWorker;
  std::string self_exe;       // this binary, re-executed as `seqscale _worker`
  std::string command_line;
};

struct RunSummary {
  int total = 0, ran = 0, resumed = 0, ok = 0, oom = 0, failed = 0, skipped = 0;
  double wall_s = 0;
};

RunSummary run_matrix(const Matrix& matrix, const RunOptions& options, std::ostream& log);

// Multi-rank: every rank ran the same point; rank 0 keeps one record. Status is the worst
// (failed > oom > skipped > ok, the reason names the rank), samples the element-wise max
// over ranks (a step is as slow as its slowest rank), memory numbers the max over ranks.
PointResult merge_rank_results(const std::vector<PointResult>& per_rank);


}  // namespace seqscale
