#include "kernels/rmsnorm/rmsnorm_ref.h"

#include <cmath>

namespace seqscale {
namespace {

double row_rstd(const float* xr, std::int64_t cols, double eps) {
  double ss = 0;
  for (std::int64_t c = 0; c < cols; ++c) ss += static_cast<double>(xr[c]) * xr[c];
  return 1.0 / std::sqrt(ss / static_cast<double>(cols) + eps);
}

}  // namespace

void rmsnorm_fwd_ref(const float* x, const float* weight, std::int64_t rows, std::int64_t cols, double eps, double* y,
                     double* rstd) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const double rs = row_rstd(xr, cols, eps);
    if (rstd) rstd[r] = rs;
    for (std::int64_t c = 0; c < cols; ++c) y[r * cols + c] = xr[c] * rs * weight[c];
  }
}

void rmsnorm_bwd_ref(const float* dy, const float* x, const float* weight, std::int64_t rows, std::int64_t cols,
                     double eps, double* dx, double* dweight) {
  if (dweight) for (std::int64_t c = 0; c < cols; ++c) dweight[c] = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    const float* dyr = dy + r * cols;
    const double rs = row_rstd(xr, cols, eps);
    double dot = 0;
    for (std::int64_t c = 0; c < cols; ++c) {
      const double xhat = xr[c] * rs;
      dot += static_cast<double>(dyr[c]) * weight[c] * xhat;
      if (dweight) dweight[c] += dyr[c] * xhat;
    }
    const double mean_gx = dot / static_cast<double>(cols);
    for (std::int64_t c = 0; c < cols; ++c) {
      dx[r * cols + c] = rs * (static_cast<double>(dyr[c]) * weight[c] - xr[c] * rs * mean_gx);
    }
  }
}

RmsNormRefOut rmsnorm_fwd_ref(const std::vector<float>& x, const std::vector<float>& weight, std::int64_t rows,
                              std::int64_t cols, double eps) {
  RmsNormRefOut out;
  out.y.resize(static_cast<std::size_t>(rows * cols));
  out.rstd.resize(static_cast<std::size_t>(rows));
  rmsnorm_fwd_ref(x.data(), weight.data(), rows, cols, eps, out.y.data(), out.rstd.data());
  return out;
}

RmsNormRefGrads rmsnorm_bwd_ref(const std::vector<float>& dy, const std::vector<float>& x,
                                const std::vector<float>& weight, std::int64_t rows, std::int64_t cols, double eps) {
  RmsNormRefGrads g;
  g.dx.resize(static_cast<std::size_t>(rows * cols));
  g.dweight.resize(static_cast<std::size_t>(cols));
  rmsnorm_bwd_ref(dy.data(), x.data(), weight.data(), rows, cols, eps, g.dx.data(), g.dweight.data());
  return g;
}

}  // namespace seqscale
