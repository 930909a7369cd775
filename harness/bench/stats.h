// Sample statistics and the rank tests the harness and the gate rely on.
//
// The gate compares the medians of K independent runs per side (bench --repeat K), so
// samples are small (3-20 values): the Mann-Whitney test and the Hodges-Lehmann interval
// below are exact for small samples without ties (the null distribution of U is counted,
// not approximated), and fall back to the normal approximation for large or tied ones.
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

// Two-sided Mann-Whitney U test. Exact (the counted null distribution of U) when neither
// sample has more than kExactMannWhitneyMax values and no value is tied; otherwise the
// normal approximation with tie and continuity corrections. Returns p.
inline constexpr int kExactMannWhitneyMax = 25;
double mann_whitney_p(const std::vector<double>& a, const std::vector<double>& b);

// The smallest two-sided p any pair of samples of these sizes can reach (complete
// separation, exact test): 2 / C(n1 + n2, n1). With 5 runs a side it is 0.0079, so a
// gate over 10 points at a family-wise 0.05 (0.005 a point) can never fail with 5 runs.
double min_mann_whitney_p(int n1, int n2);

// Hodges-Lehmann estimate of the shift b - a (the median of every pairwise difference
// b_j - a_i) with its distribution-free confidence interval (Moses): the order statistics
// of the differences cut at the exact critical value of U. `available` is false when the
// samples are too small for the confidence asked (3 vs 3 cannot give a 95% interval: its
// smallest two-sided tail is 0.1), and then lo/hi are the extreme differences.
struct ShiftInterval {
  double shift = 0;
  double lo = 0;
  double hi = 0;
  bool available = false;
};
ShiftInterval hodges_lehmann_interval(const std::vector<double>& a, const std::vector<double>& b,
                                      double confidence = 0.95);

// Standard normal quantile (Acklam's rational approximation, |error| < 1.2e-9).
double normal_quantile(double p);

}  // namespace seqscale
