// CPU reference of bias + GELU (tanh approximation), forward and backward, in double: the
// definition as Megatron's fused_bias_gelu.py writes it, on inputs already rounded to the
// kernel's dtype (as float); outputs in double for comparison.
//   y = 0.5 z (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3))),  z = x + b
//   dx = dy * gelu'(z),  dbias = sum over rows of dx
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "common/check_result.h"
#include "kernels/common/rounding.h"
#include "workloads/dtype.h"

namespace seqscale {

// Tolerances of a bias_gelu kernel against this reference (tests and bench checks).
// y and dx are one fp32 evaluation rounded once to the dtype: one unit of the dtype's
// last place relative (io_rounding_rel), plus the fp32 evaluation: a few ulp of fp32
// relative (rel 1e-5 covers exp, divide and the cubic's rounding), and an absolute 1e-6
// where gelu and gelu' cross zero (an fp32 rounding of terms of size ~1 there). dbias is
// an fp32 sum over rows: summing n terms in fp32 drifts ~2^-24 sqrt(n) times the sum's
// size in a random walk when added in sequence (the CPU backend; the kernel's chunked
// order drifts less): 8 x that, relative to the largest |dbias|.
inline CheckTolerance bias_gelu_y_tolerance(DType t) { return {1e-6, 1e-5 + io_rounding_rel(t), 0}; }
inline CheckTolerance bias_gelu_dx_tolerance(DType t) { return {1e-6, 2e-5 + io_rounding_rel(t), 0}; }
inline CheckTolerance bias_gelu_dbias_tolerance(std::int64_t rows) {
  return {1e-6, 1e-5, 8.0 * std::ldexp(1.0, -24) * std::sqrt(static_cast<double>(rows))};
}

double gelu_tanh_ref(double z);
double gelu_tanh_grad_ref(double z);

// Pointer forms: x [rows, cols], bias [cols].
void bias_gelu_fwd_ref(const float* x, const float* bias, std::int64_t rows, std::int64_t cols, double* y);
void bias_gelu_bwd_ref(const float* dy, const float* x, const float* bias, std::int64_t rows, std::int64_t cols,
                       double* dx, double* dbias /* [cols], may be null */);

std::vector<double> bias_gelu_fwd_ref(const std::vector<float>& x, const std::vector<float>& bias, std::int64_t rows,
                                      std::int64_t cols);

struct BiasGeluRefGrads {
  std::vector<double> dx;     // rows * cols
  std::vector<double> dbias;  // cols
};

BiasGeluRefGrads bias_gelu_bwd_ref(const std::vector<float>& dy, const std::vector<float>& x,
                                   const std::vector<float>& bias, std::int64_t rows, std::int64_t cols);

}  // namespace seqscale
