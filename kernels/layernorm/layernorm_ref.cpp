#include "kernels/layernorm/layernorm_ref.h"

#include <cmath>

namespace seqscale {
namespace {

// Two-pass mean and variance in double: exact enough to judge a single-pass fp32 Welford.
void row_moments(const float* xr, std::int64_t cols, double eps, double* mean, double* rstd) {
  double sum = 0;
  for (std::int64_t c = 0; c < cols; ++c) sum += xr[c];
  const double mu = sum / static_cast<double>(cols);
  double var = 0;
  for (std::int64_t c = 0; c < cols; ++c) var += (xr[c] - mu) * (xr[c] - mu);
  *mean = mu;
  *rstd = 1.0 / std::sqrt(var / static_cast<double>(cols) + eps);
}

}  // namespace

void layernorm_fwd_ref(const float* x, const float* weight, const float* bias, std::int64_t rows,
                       std::int64_t cols, double eps, double* y, double* mean, double* rstd) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double mu, rs;
    row_moments(xr, cols, eps, &mu, &rs);
    if (mean) mean[r] = mu;
    if (rstd) rstd[r] = rs;
    for (std::int64_t c = 0; c < cols; ++c) y[r * cols + c] = (xr[c] - mu) * rs * weight[c] + bias[c];
  }
}

void layernorm_bwd_ref(const float* dy, const float* x, const float* weight, std::int64_t rows,
                       std::int64_t cols, double eps, double* dx, double* dweight, double* dbias,
                       double* xhat) {
  for (std::int64_t c = 0; c < cols; ++c) dweight[c] = dbias[c] = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* dyr = dy + r * cols;
    double mu, rs;
    row_moments(xr, cols, eps, &mu, &rs);
    double sum_g = 0, sum_gx = 0;
    for (std::int64_t c = 0; c < cols; ++c) {
      xhat[c] = (xr[c] - mu) * rs;
      const double g = static_cast<double>(dyr[c]) * weight[c];
      sum_g += g;
      sum_gx += g * xhat[c];
      dweight[c] += static_cast<double>(dyr[c]) * xhat[c];
      dbias[c] += dyr[c];
    }
    const double mean_g = sum_g / static_cast<double>(cols), mean_gx = sum_gx / static_cast<double>(cols);
    for (std::int64_t c = 0; c < cols; ++c) {
      const double g = static_cast<double>(dyr[c]) * weight[c];
      dx[r * cols + c] = rs * (g - mean_g - xhat[c] * mean_gx);
    }
  }
}

LayerNormRefOut layernorm_fwd_ref(const std::vector<float>& x, const std::vector<float>& weight,
                                  const std::vector<float>& bias, std::int64_t rows,
                                  std::int64_t cols, double eps) {
  LayerNormRefOut out;
  out.y.resize(static_cast<size_t>(rows * cols));
  out.mean.resize(static_cast<size_t>(rows));
  out.rstd.resize(static_cast<size_t>(rows));
  layernorm_fwd_ref(x.data(), weight.data(), bias.data(), rows, cols, eps, out.y.data(), out.mean.data(),
                    out.rstd.data());
  return out;
}

LayerNormRefGrads layernorm_bwd_ref(const std::vector<float>& dy, const std::vector<float>& x,
                                    const std::vector<float>& weight, std::int64_t rows,
                                    std::int64_t cols, double eps) {
  LayerNormRefGrads g;
  g.dx.resize(static_cast<size_t>(rows * cols));
  g.dweight.resize(static_cast<size_t>(cols));
  g.dbias.resize(static_cast<size_t>(cols));
  std::vector<double> xhat(static_cast<size_t>(cols));
  layernorm_bwd_ref(dy.data(), x.data(), weight.data(), rows, cols, eps, g.dx.data(), g.dweight.data(),
                    g.dbias.data(), xhat.data());
  return g;
}

}  // namespace seqscale
