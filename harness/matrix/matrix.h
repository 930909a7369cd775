// Benchmark matrices as data (workloads/matrices/*.json): each entry names a registered
// benchmark, the backends to run it on and its axes; expand() takes the cross product,
// drops excluded combinations and gives every point a stable id (the resume key).
//
//   {"name": "layernorm", "description": "...",
//    "timing": {"max_noise": 0.005, "min_samples": 10, "max_samples": 1000, "time_cap_s": 1},
//    "benchmarks": [
//      {"name": "layernorm_fwd", "backend": ["cpu", "cuda"],
//       "axes": {"rows": {"pow2": [1024, 65536]}, "cols": [128, 1000, 4096],
//                "dtype": ["fp32", "bf16"]},
//       "exclude": [{"backend": "cpu", "dtype": "bf16"}], "timeout_s": 60}]}
//
// Axis forms: a list; {"pow2": [lo, hi]}; {"linear": [lo, hi, step]};
// {"geometric": [lo, hi, factor]}.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace seqscale {

struct TimingPolicy {
  double warmup_s = 0.05;      // run at least this long (and >= 1 call) before sampling
  double max_noise = 0.005;    // stop once stddev/mean of the samples is below this...
  std::int64_t min_samples = 10;  // ...and at least this many were taken
  std::int64_t max_samples = 1000;
  double time_cap_s = 2.0;     // or when sampling has taken this long
  double min_sample_s = 1e-4;  // CPU: batch calls so one sample spans at least this
  bool flush_l2 = true;        // GPU: flush L2 before each sample (cold-cache timing)
  bool cupti = true;           // GPU: take kernel times from CUPTI activity records when available
  bool check = true;           // one checked call against the CPU reference before timing
  bool check_only = false;     // `bench --check-only`: the check, then no timing at all
};

struct MatrixPoint {
  std::string id;
  std::string suite;
  std::string bench;
  std::string backend;        // "cpu" | "cuda"
  nlohmann::json params;      // axis name -> value (backend excluded)
  double timeout_s = 120;
  TimingPolicy timing;
};

struct Matrix {
  std::string name;
  std::string source;
  std::vector<MatrixPoint> points;
};

// Reads and expands a matrix file (a name under workloads/matrices or a path). Bad input
// throws ConfigError naming the file and field. Unknown benchmarks are an error too.
Matrix load_matrix(const std::string& name_or_path);
Matrix expand_matrix(const nlohmann::json& doc, const std::string& where);

nlohmann::json timing_to_json(const TimingPolicy& t);
TimingPolicy timing_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace seqscale
