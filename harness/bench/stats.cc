#include "harness/bench/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace seqscale {
namespace {

// Null distribution of U for samples of n1 and n2 without ties: entry u counts the
// arrangements with U = u, i.e. the coefficients of the Gaussian binomial [n1+n2 choose n1]_q,
// built one factor (1 - q^(n2+i)) / (1 - q^i) at a time (each partial product is itself a
// Gaussian binomial, so every intermediate is an integer polynomial). C(50, 25) ~ 1.3e14 is
// exact in a double.
std::vector<double> u_counts(int n1, int n2) {
  const int k = std::min(n1, n2), m = std::max(n1, n2);
  std::vector<double> c(static_cast<size_t>(n1) * static_cast<size_t>(n2) + 1, 0.0);
  c[0] = 1;
  for (int i = 1; i <= k; ++i) {
    const int up = m + i;  // multiply by (1 - q^up)
    for (int t = static_cast<int>(c.size()) - 1; t >= up; --t) c[static_cast<size_t>(t)] -= c[static_cast<size_t>(t - up)];
    for (size_t t = static_cast<size_t>(i); t < c.size(); ++t) c[t] += c[t - static_cast<size_t>(i)];  // divide by (1 - q^i)
  }
  return c;
}

// P(U <= u) under the null, exact.
double u_cdf(const std::vector<double>& counts, double u) {
  const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
  double below = 0;
  for (size_t t = 0; t < counts.size() && static_cast<double>(t) <= u + 1e-9; ++t) below += counts[t];
  return below / total;
}

bool small_enough_for_exact(size_t n1, size_t n2) {
  return n1 <= static_cast<size_t>(kExactMannWhitneyMax) && n2 <= static_cast<size_t>(kExactMannWhitneyMax);
}

}  // namespace

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
  if (tie_term == 0 && small_enough_for_exact(a.size(), b.size())) {
    const auto counts = u_counts(static_cast<int>(a.size()), static_cast<int>(b.size()));
    const double lower = u_cdf(counts, u);                 // P(U <= u)
    const double upper = 1 - u_cdf(counts, u - 1);         // P(U >= u)
    return std::min(1.0, 2 * std::min(lower, upper));
  }
  const double n = n1 + n2;
  const double mu = n1 * n2 / 2;
  const double var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)));
  if (var <= 0) return 1.0;  // all values tied: no evidence of a difference
  const double z = (std::fabs(u - mu) - 0.5) / std::sqrt(var);
  return std::erfc(std::max(0.0, z) / std::sqrt(2.0));
}

double min_mann_whitney_p(int n1, int n2) {
  if (n1 <= 0 || n2 <= 0) return 1.0;
  // 2 / C(n1 + n2, n1), in logs so large sizes do not overflow.
  const double log_c = std::lgamma(n1 + n2 + 1.0) - std::lgamma(n1 + 1.0) - std::lgamma(n2 + 1.0);
  return std::min(1.0, 2 * std::exp(-log_c));
}

ShiftInterval hodges_lehmann_interval(const std::vector<double>& a, const std::vector<double>& b, double confidence) {
  ShiftInterval r;
  if (a.empty() || b.empty()) return r;
  std::vector<double> d;
  d.reserve(a.size() * b.size());
  for (double y : b)
    for (double x : a) d.push_back(y - x);
  std::sort(d.begin(), d.end());
  r.shift = median_of(d);
  r.lo = d.front();
  r.hi = d.back();
  const double tail = (1 - confidence) / 2;
  const auto n = static_cast<long>(d.size());
  long c = -1;  // largest c with P(U <= c) <= tail; the interval is [d_(c+1), d_(n-c)]
  if (small_enough_for_exact(a.size(), b.size())) {
    const auto counts = u_counts(static_cast<int>(a.size()), static_cast<int>(b.size()));
    const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
    double below = 0;
    for (size_t t = 0; t < counts.size(); ++t) {
      below += counts[t];
      if (below / total > tail) break;
      c = static_cast<long>(t);
    }
  } else {
    const double n1 = static_cast<double>(a.size()), n2 = static_cast<double>(b.size());
    const double sd = std::sqrt(n1 * n2 * (n1 + n2 + 1) / 12);
    c = static_cast<long>(std::floor(n1 * n2 / 2 - normal_quantile(1 - tail) * sd - 0.5));
  }
  if (c < 0 || c >= n - 1 - c) return r;  // too few values for this confidence
  r.lo = d[static_cast<size_t>(c)];
  r.hi = d[static_cast<size_t>(n - 1 - c)];
  r.available = true;
  return r;
}

double normal_quantile(double p) {
  if (p <= 0) return -INFINITY;
  if (p >= 1) return INFINITY;
  // Acklam (2003): rational approximations in the central region and the two tails.
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  const double lo = 0.02425;
  if (p < lo) {
    const double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lo) return -normal_quantile(1 - p);
  const double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

}  // namespace seqscale
