// Runs an expanded matrix: isolation (each point in a worker process that is replaced
// when a point crashes, hangs or leaves a sticky CUDA error), per-point timeout, resume
// (finished points in the results file are skipped), atomic write after every point,
// progress on a terminal or plain log lines otherwise.
//
// Repeats (`bench --repeat K`, what the gate needs): the matrix runs K times, each round in
// a fresh worker process (or a process per point), the rounds interleaved so that drift of
// the machine over the session spreads evenly over the points: round r runs the points
// rotated by floor(r/2) * n / ceil(K/2) and, on odd rounds, reversed, so each pair of rounds
// puts every point once at position i and once at n-1-i. Each point keeps every run's
// samples and, in `runs_median_s`, the median of each run; after each round the merged
// point is journaled, so a resumed run adds only the runs still missing.
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
  int repeat = 1;             // independent runs of every point (rounds); > 1 needs isolation
};

struct RunSummary {
  // ran and resumed count point-runs (K per point with repeat); ok..skipped count the
  // points this invocation ran, by their final status.
  int total = 0, ran = 0, resumed = 0, ok = 0, oom = 0, failed = 0, skipped = 0;
  double wall_s = 0;
};

RunSummary run_matrix(const Matrix& matrix, const RunOptions& options, std::ostream& log);

// Multi-rank: every rank ran the same point; rank 0 keeps one record. Status is the worst
// (failed > oom > skipped > ok, the reason names the rank), samples the element-wise max
// over ranks (a step is as slow as its slowest rank), memory numbers the max over ranks.
PointResult merge_rank_results(const std::vector<PointResult>& per_rank);

// The order of the n selected points in each of k rounds (indices into the selection).
std::vector<std::vector<int>> repeat_orders(int n, int k);

// Adds one more independent run of a point to the record of its earlier runs (none:
// `earlier` is nullptr). Status is the worst (the reason names the run); samples are
// concatenated and runs_median_s gains the run's median; memory numbers are the max; a
// failed check wins.
PointResult add_run(const PointResult* earlier, const PointResult& run, int run_number);

// How many independent runs a record holds: runs_median_s when present, else 1 for a
// timed point, 0 for an untimed one.
int runs_recorded(const PointResult& p);


}  // namespace seqscale
