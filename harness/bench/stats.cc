#include "harness/bench/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace seqscale {

double median_of(std::vector<double> v) {
  if (v.empty()) return 0;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<long>(mid), v.end());
  const double hi = v[mid];
  if (v.size() % 2) return hi;
  return 0.5 * (hi + *std::max_element(v.begin(), v.begin() + static_cast<long>(mid)));
}

SampleStats summarize(std::vector<double> samples) {
  SampleStats s;
  s.n = static_cast<std::int64_t>(samples.size());
  if (samples.empty()) return s;
  std::sort(samples.begin(), samples.end());
  s.min = samples.front();
  s.max = samples.back();
  s.median = median_of(samples);
  s.mean = std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(s.n);
  if (s.n > 1) {
    double ss = 0;
    for (double x : samples) ss += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(ss / static_cast<double>(s.n - 1));
    s.rel_noise = s.mean > 0 ? s.stddev / s.mean : 0;
  }
  std::vector<double> dev(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) dev[i] = std::fabs(samples[i] - s.median);
  s.mad = median_of(dev);
  return s;
}

double mann_whitney_p(const std::vector<double>& a, const std::vector<double>& b) {
  const double n1 = static_cast<double>(a.size()), n2 = static_cast<double>(b.size());
  if (a.empty() || b.empty()) return 1.0;
  std::vector<std::pair<double, int>> all;
  all.reserve(a.size() + b.size());
  for (double x : a) all.emplace_back(x, 0);
  for (double x : b) all.emplace_back(x, 1);
  std::sort(all.begin(), all.end());
  double rank_sum_a = 0, tie_term = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double avg_rank = 0.5 * static_cast<double>(i + 1 + j);  // ranks i+1..j
    const double t = static_cast<double>(j - i);
    tie_term += t * t * t - t;
    for (size_t k = i; k < j; ++k) {
      if (all[k].second == 0) rank_sum_a += avg_rank;
    }
    i = j;
  }
  const double u = rank_sum_a - n1 * (n1 + 1) / 2;
  const double n = n1 + n2;
  const double mu = n1 * n2 / 2;
  const double var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)));
  if (var <= 0) return 1.0;  // all values tied: no evidence of a difference
  const double z = (std::fabs(u - mu) - 0.5) / std::sqrt(var);
  return std::erfc(std::max(0.0, z) / std::sqrt(2.0));
}

RatioInterval median_ratio_interval(const std::vector<double>& a, const std::vector<double>& b,
                                    double confidence, int resamples) {
  RatioInterval r;
  if (a.empty() || b.empty()) return r;
  const double ma = median_of(a);
  r.ratio = ma > 0 ? median_of(b) / ma : 1;
  std::mt19937_64 rng(0x5eb5ca1e);
  std::vector<double> ratios;
  ratios.reserve(static_cast<size_t>(resamples));
  std::vector<double> ra(a.size()), rb(b.size());
  std::uniform_int_distribution<size_t> pa(0, a.size() - 1), pb(0, b.size() - 1);
  for (int k = 0; k < resamples; ++k) {
    for (auto& x : ra) x = a[pa(rng)];
    for (auto& x : rb) x = b[pb(rng)];
    const double m = median_of(ra);
    if (m > 0) ratios.push_back(median_of(rb) / m);
  }
  if (ratios.empty()) return r;
  std::sort(ratios.begin(), ratios.end());
  const double tail = (1 - confidence) / 2;
  r.lo = ratios[static_cast<size_t>(tail * static_cast<double>(ratios.size() - 1))];
  r.hi = ratios[static_cast<size_t>((1 - tail) * static_cast<double>(ratios.size() - 1))];
  return r;
}

}  // namespace seqscale
