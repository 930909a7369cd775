// CPU reference of RMSNorm forward and backward, in double, on inputs already rounded to
// the kernel's dtype (as float); outputs in double for comparison.
//   y = x * rstd * w,  rstd = 1 / sqrt(mean(x^2) + eps)
//   dx = rstd * (g - xhat * mean(g * xhat)),  g = dy * w,  xhat = x * rstd;  dw = sum_rows dy * xhat
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/check_result.h"
#include "kernels/common/rounding.h"
#include "workloads/dtype.h"

namespace seqscale {

// Tolerances of an RMSNorm kernel against this reference (tests and bench checks). rstd
// comes from an fp32 sum of C squares: positive terms, relative error <= (terms per
// thread + tree depth) x 2^-24 in the kernel (~40 x 6e-8), up to ~C x 2^-24 in sequence
// on the CPU (6144: 4e-4 worst, ~5e-6 typical): rel 1e-5 on rstd and y, and 1 unit of
// the I/O dtype for y's one rounding (io_rounding_rel). dx adds a row reduction whose
// error is scaled by xhat (|xhat| <= ~4): 4x that, absolute as well as relative (dx
// crosses zero). dweight is an fp32 sum over rows: sequential fp32 summation drifts
// ~2^-24 sqrt(rows) times the sum's size (random walk): 8x that, relative to max|dw|.
inline CheckTolerance rmsnorm_y_tolerance(DType t) { return {1e-5, 1e-5 + io_rounding_rel(t), 0}; }
inline CheckTolerance rmsnorm_rstd_tolerance() { return {0, 1e-5, 0}; }
inline CheckTolerance rmsnorm_dx_tolerance(DType t) { return {4e-5, 4e-5 + io_rounding_rel(t), 0}; }
inline CheckTolerance rmsnorm_dweight_tolerance(std::int64_t rows) {
  return {1e-5, 1e-5, 8.0 * std::ldexp(1.0, -24) * std::sqrt(static_cast<double>(rows))};
}

// Pointer forms (x [rows, cols], weight [cols]); rstd may be null.
void rmsnorm_fwd_ref(const float* x, const float* weight, std::int64_t rows, std::int64_t cols, double eps, double* y,
                     double* rstd);
// dweight may be null.
void rmsnorm_bwd_ref(const float* dy, const float* x, const float* weight, std::int64_t rows, std::int64_t cols,
                     double eps, double* dx, double* dweight);

struct RmsNormRefOut {
  std::vector<double> y;     // rows * cols
  std::vector<double> rstd;  // rows
};
RmsNormRefOut rmsnorm_fwd_ref(const std::vector<float>& x, const std::vector<float>& weight, std::int64_t rows,
                              std::int64_t cols, double eps);

struct RmsNormRefGrads {
  std::vector<double> dx;       // rows * cols
  std::vector<double> dweight;  // cols
};
RmsNormRefGrads rmsnorm_bwd_ref(const std::vector<float>& dy, const std::vector<float>& x,
                                const std::vector<float>& weight, std::int64_t rows, std::int64_t cols, double eps);

}  // namespace seqscale
