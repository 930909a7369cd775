#include "kernels/rmsnorm/rmsnorm_cpu.h"

#include <cmath>

namespace seqscale {

void rmsnorm_fwd_cpu(const float* x, const float* weight, std::int64_t rows, std::int64_t cols, float eps, float* y,
                     float* rstd) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    float ss = 0;
    for (std::int64_t c = 0; c < cols; ++c) ss += xr[c] * xr[c];
    const float rs = 1.f / std::sqrt(ss / static_cast<float>(cols) + eps);
    if (rstd) rstd[r] = rs;
    for (std::int64_t c = 0; c < cols; ++c) y[r * cols + c] = xr[c] * rs * weight[c];
  }
}

void rmsnorm_bwd_cpu(const float* dy, const float* x, const float* weight, const float* rstd, std::int64_t rows,
                     std::int64_t cols, float* dx, float* dweight) {
  if (dweight) for (std::int64_t c = 0; c < cols; ++c) dweight[c] = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* dyr = dy + r * cols;
    const float rs = rstd[r];
    float dot = 0;
    for (std::int64_t c = 0; c < cols; ++c) {
      dot += dyr[c] * weight[c] * (xr[c] * rs);
      if (dweight) dweight[c] += dyr[c] * (xr[c] * rs);
    }
    const float mean_gx = dot / static_cast<float>(cols);
    float* dxr = dx + r * cols;
    for (std::int64_t c = 0; c < cols; ++c) dxr[c] = rs * (dyr[c] * weight[c] - (xr[c] * rs) * mean_gx);
  }
}

}  // namespace seqscale
