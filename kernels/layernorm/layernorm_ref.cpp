#include "kernels/layernorm/layernorm_ref.h"

#include <cmath>

namespace seqscale {

LayerNormRefOut layernorm_fwd_ref(const std::vector<float>& x, const std::vector<float>& weight,
                                  const std::vector<float>& bias, std::int64_t rows,
                                  std::int64_t cols, double eps) {
  LayerNormRefOut out;
  out.y.resize(static_cast<size_t>(rows * cols));
  out.mean.resize(static_cast<size_t>(rows));
  out.rstd.resize(static_cast<size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * cols;
    double sum = 0;
    for (std::int64_t c = 0; c < cols; ++c) sum += xr[c];
    const double mean = sum / cols;
    double var = 0;  // two-pass: exact enough to judge a single-pass Welford kernel
    for (std::int64_t c = 0; c < cols; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    var /= cols;
    const double rstd = 1.0 / std::sqrt(var + eps);
    out.mean[r] = mean;
    out.rstd[r] = rstd;
    for (std::int64_t c = 0; c < cols; ++c) {
      out.y[r * cols + c] = (xr[c] - mean) * rstd * weight[c] + bias[c];
    }
  }
  return out;
}

LayerNormRefGrads layernorm_bwd_ref(const std::vector<float>& dy, const std::vector<float>& x,
                                    const std::vector<float>& weight, std::int64_t rows,
                                    std::int64_t cols, double eps) {
  LayerNormRefGrads g;
  g.dx.resize(static_cast<size_t>(rows * cols));
  g.dweight.assign(static_cast<size_t>(cols), 0.0);
  g.dbias.assign(static_cast<size_t>(cols), 0.0);
  std::vector<double> xhat(static_cast<size_t>(cols));
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x.data() + r * cols;
    const float* dyr = dy.data() + r * cols;
    double sum = 0;
    for (std::int64_t c = 0; c < cols; ++c) sum += xr[c];
    const double mean = sum / cols;
    double var = 0;
    for (std::int64_t c = 0; c < cols; ++c) var += (xr[c] - mean) * (xr[c] - mean);
    const double rstd = 1.0 / std::sqrt(var / cols + eps);
    double sum_g = 0, sum_gx = 0;
    for (std::int64_t c = 0; c < cols; ++c) {
      xhat[c] = (xr[c] - mean) * rstd;
      const double gc = static_cast<double>(dyr[c]) * weight[c];
      sum_g += gc;
      sum_gx += gc * xhat[c];
      g.dweight[c] += static_cast<double>(dyr[c]) * xhat[c];
      g.dbias[c] += dyr[c];
    }
    const double mean_g = sum_g / cols, mean_gx = sum_gx / cols;
    for (std::int64_t c = 0; c < cols; ++c) {
      const double gc = static_cast<double>(dyr[c]) * weight[c];
      g.dx[r * cols + c] = rstd * (gc - mean_g - xhat[c] * mean_gx);
    }
  }
  return g;
}

}  // namespace seqscale
