// Results schema v1 (results/SCHEMA.md): one module writes it, reports/ and gate read it.
// Files are written atomically (temporary file in the same folder, fsync, rename), so a
// run killed at any moment leaves either the old file or the new one, never a torn one.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/bench/stats.h"
#include "common/check_result.h"

namespace seqscale {

inline constexpr const char* kResultsSchema = "seqscale.results/1";

enum class PointStatus : std::uint8_t { kOk, kOom, kFailed, kSkipped };
std::string_view status_name(PointStatus s);

struct RunMetadata {
  std::string git_commit;
  std::string host;
  std::string device;          // "NVIDIA H100 80GB HBM3", or "cpu:<model name>"
  std::string driver;          // CUDA driver version, "" on CPU
  std::string cuda_runtime;
  std::string nccl;
  std::string mpi;
  std::string command_line;
  std::string started_utc;
  std::string seqscale_version;
  std::int64_t world_size = 1;
  nlohmann::json ranks = nlohmann::json::array();  // per rank: host, device (multi-rank runs)
  nlohmann::json extra = nlohmann::json::object(); // clocks, throttling, calibration used
};

struct PointResult {
  std::string id;              // stable key: suite/bench/backend/param=value,...
  std::string suite;
  std::string bench;
  std::string backend;         // "cpu" | "cuda" | "model"
  nlohmann::json params = nlohmann::json::object();
  PointStatus status = PointStatus::kOk;
  std::string reason;          // why oom / failed / skipped
  std::string source = "measured";  // "measured" | "model"
  std::vector<double> samples_s;
  SampleStats stats;           // over samples_s
  // `bench --repeat K`: the median of each of the K independent runs (separate processes,
  // interleaved), in run order; samples_s then holds every run's samples. Empty otherwise.
  std::vector<double> runs_median_s;
  double declared_flops = 0;
  double declared_bytes = 0;
  std::map<std::string, double> metrics;  // peak_bytes, GBps, TFLOPs, busbw_GBps, ...
  std::optional<CheckResult> check;  // the checked call against the CPU reference, if any
  std::string timing;          // "cupti" | "events" | "wall" for timed points, else ""
  double wall_s = 0;           // harness time spent on the point, overhead included
};

struct ResultsFile {
  std::string schema = kResultsSchema;
  RunMetadata run;
  std::vector<PointResult> points;

  const PointResult* find(const std::string& id) const;
};

nlohmann::json to_json(const PointResult& p);
nlohmann::json to_json(const ResultsFile& f);
// Strict: throws ConfigError("<where>: field '<path>' ...") for a corrupt or foreign file.
PointResult point_from_json(const nlohmann::json& j, const std::string& where);
ResultsFile results_from_json(const nlohmann::json& j, const std::string& where);

ResultsFile read_results(const std::string& path);
void write_results_atomic(const ResultsFile& f, const std::string& path);
void write_text_atomic(const std::string& text, const std::string& path);

// A record for `point` with its identity copied (id, suite, bench, backend, params).
struct MatrixPoint;
PointResult result_for(const MatrixPoint& point);

// Fills the derived numbers of a point from its samples and declared work.
void finalize_point(PointResult& p);

// Metadata of this process: commit, host, device, versions, command line.
RunMetadata collect_metadata(const std::string& command_line, bool want_gpu);

std::string point_id(const std::string& suite, const std::string& bench, const std::string& backend,
                     const nlohmann::json& params);

}  // namespace seqscale
