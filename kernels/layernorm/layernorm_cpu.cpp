#include "kernels/layernorm/layernorm_cpu.h"

#include <cmath>

namespace seqscale {

void layernorm_fwd_cpu(const float* x, const float* weight, const float* bias, std::int64_t rows,
                       std::int64_t cols, float eps, float* y, float* mean, float* rstd) {
  const float inv_cols = 1.f / static_cast<float>(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float sum = 0;
    for (std::int64_t c = 0; c < cols; ++c) sum += xr[c];
    const float mu = sum * inv_cols;
    float var = 0;
    for (std::int64_t c = 0; c < cols; ++c) var += (xr[c] - mu) * (xr[c] - mu);
    const float rs = 1.f / std::sqrt(var * inv_cols + eps);
    mean[r] = mu;
    rstd[r] = rs;
    float* yr = y + r * cols;
    for (std::int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mu) * rs * weight[c] + bias[c];
  }
}

void layernorm_bwd_cpu(const float* dy, const float* x, const float* weight, const float* mean,
                       const float* rstd, std::int64_t rows, std::int64_t cols, float* dx, float* dweight,
                       float* dbias) {
  for (std::int64_t c = 0; c < cols; ++c) dweight[c] = dbias[c] = 0;
  const float inv_cols = 1.f / static_cast<float>(cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* dyr = dy + r * cols;
    const float mu = mean[r], rs = rstd[r];
    float sum_g = 0, sum_gx = 0;
    for (std::int64_t c = 0; c < cols; ++c) {
      const float xhat = (xr[c] - mu) * rs;
      const float g = dyr[c] * weight[c];
      sum_g += g;
      sum_gx += g * xhat;
      dweight[c] += dyr[c] * xhat;
      dbias[c] += dyr[c];
    }
    const float mean_g = sum_g * inv_cols, mean_gx = sum_gx * inv_cols;
    float* dxr = dx + r * cols;
    for (std::int64_t c = 0; c < cols; ++c) dxr[c] = rs * (dyr[c] * weight[c] - mean_g - (xr[c] - mu) * rs * mean_gx);
  }
}

}  // namespace seqscale
