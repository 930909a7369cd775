// The harness's one stopping rule for timed samples (nvbench's): keep sampling until the
// relative noise (stddev / mean, updated online with Welford) is below max_noise after at
// least min_samples, or max_samples are taken, or time_cap_s has passed.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>

#include "harness/matrix/matrix.h"

namespace seqscale {

class SampleStop {
 public:
  explicit SampleStop(const TimingPolicy& t) : timing_(t), start_(std::chrono::steady_clock::now()) {}

  // Adds one sample; returns true when sampling should stop.
  bool add(double seconds) {
    ++n_;
    const double d = seconds - mean_;
    mean_ += d / static_cast<double>(n_);
    m2_ += d * (seconds - mean_);
    if (n_ >= timing_.min_samples && noise() < timing_.max_noise) return true;
    if (n_ >= timing_.max_samples) return true;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() > timing_.time_cap_s;
  }

  double noise() const {
    return n_ > 1 && mean_ > 0 ? std::sqrt(m2_ / static_cast<double>(n_ - 1)) / mean_ : 1.0;
  }

 private:
  TimingPolicy timing_;
  std::chrono::steady_clock::time_point start_;
  std::int64_t n_ = 0;
  double mean_ = 0, m2_ = 0;
};

}  // namespace seqscale
