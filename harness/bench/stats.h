// Sample statistics and the tests the harness and the gate rely on.
#pragma once
#include <cstdint>
#include <vector>

namespace seqscale {

struct SampleStats {
  std::int64_t n = 0;
  double median = 0;
  double min = 0;
  double max = 0;
  double mean = 0;
  double stddev = 0;
  double rel_noise = 0;  // stddev / mean (nvbench's noise), 0 for n < 2
  double mad = 0;        // median absolute deviation
};

SampleStats summarize(std::vector<double> samples);
double median_of(std::vector<double> v);

// Two-sided Mann-Whitney U test with tie correction, normal approximation with
// continuity correction (valid for n, m >= 8, which the gate requires). Returns p.
double mann_whitney_p(const std::vector<double>& a, const std::vector<double>& b);

// Percentile bootstrap confidence interval of median(b)/median(a); deterministic (fixed
// seed) so the same two files always gate the same way.
struct RatioInterval {
  double ratio = 1;
  double lo = 1;
  double hi = 1;
};
RatioInterval median_ratio_interval(const std::vector<double>& a, const std::vector<double>& b,
                                    double confidence = 0.95, int resamples = 2000);

}  // namespace seqscale
