// Incremental, crash-safe results writing for matrix runs. Each finished point is appended
// as one JSON line to `<results>.journal` and fsync'ed (a kill -9 loses at most the point
// in flight; a torn last line is ignored on resume). The complete results file is rewritten
// atomically (temporary file + rename) at the first point, then at most every
// `compact_every_s`, and when the writer closes, after which the journal is removed. Cost
// per point is O(point), not O(file): a 1,000-point matrix does not rewrite 1,000 files.
#pragma once
#include <chrono>
#include <string>

#include "harness/results/results.h"

namespace seqscale {

// results.json (if any) plus the journal's complete lines; later records replace earlier
// ones with the same id. Throws ConfigError for a corrupt results file.
ResultsFile load_results_and_journal(const std::string& path);

class ResultsWriter {
 public:
  ResultsWriter(std::string path, ResultsFile initial, double compact_every_s = 2.0);
  ~ResultsWriter();  // compacts; never throws
  ResultsWriter(const ResultsWriter&) = delete;
  ResultsWriter& operator=(const ResultsWriter&) = delete;

  const ResultsFile& results() const { return results_; }
  void add(const PointResult& p);
  void compact();

 private:
  std::string path_;
  ResultsFile results_;
  double compact_every_s_;
  int journal_fd_ = -1;
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_compact_{};
  bool compacted_once_ = false;
};

}  // namespace seqscale
