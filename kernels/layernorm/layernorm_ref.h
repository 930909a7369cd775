// CPU reference for LayerNorm forward and backward: double accumulation, inputs already
// rounded to the kernel's dtype (as float), outputs in double for comparison.
#pragma once
#include "workloads/dtype.h"
#include "common/check_result.h"
#include <cmath>
#include <cstdint>
#include <vector>

namespace seqscale {

// Tolerances of a LayerNorm kernel against this reference (tests and bench checks): fp32
// 1e-4 (Welford in fp32 over <= 6144 terms); fp16/bf16 outputs are one rounding of an fp32
// value: 2 ulp of the dtype, relative to |y| plus the same absolute floor. dx sums three
// rounded terms: 4x that. dweight/dbias are fp32 sums over rows: 1e-3 x sqrt(rows) + 1e-3 rel.
inline double layernorm_dtype_tolerance(DType t) { return t == DType::kFp32 ? 1e-4 : (t == DType::kFp16 ? 2.0 / 1024 : 2.0 / 128); }
inline CheckTolerance layernorm_y_tolerance(DType t) { return {layernorm_dtype_tolerance(t), layernorm_dtype_tolerance(t), 0}; }
inline CheckTolerance layernorm_dx_tolerance(DType t) { return {4 * layernorm_dtype_tolerance(t), 4 * layernorm_dtype_tolerance(t), 0}; }
inline CheckTolerance layernorm_param_grad_tolerance(std::int64_t rows) {
  return {1e-3 * std::sqrt(static_cast<double>(rows)), 1e-3, 0};
}

// Pointer forms (the CPU benchmark runs these on tracked buffers).
void layernorm_fwd_ref(const float* x, const float* weight, const float* bias, std::int64_t rows,
                       std::int64_t cols, double eps, double* y, double* mean, double* rstd);
void layernorm_bwd_ref(const float* dy, const float* x, const float* weight, std::int64_t rows,
                       std::int64_t cols, double eps, double* dx, double* dweight, double* dbias,
                       double* xhat_scratch /* cols */);

struct LayerNormRefOut {
  std::vector<double> y;     // rows * cols
  std::vector<double> mean;  // rows
  std::vector<double> rstd;  // rows
};

LayerNormRefOut layernorm_fwd_ref(const std::vector<float>& x, const std::vector<float>& weight,
                                  const std::vector<float>& bias, std::int64_t rows,
                                  std::int64_t cols, double eps);

struct LayerNormRefGrads {
  std::vector<double> dx;       // rows * cols
  std::vector<double> dweight;  // cols
  std::vector<double> dbias;    // cols
};

LayerNormRefGrads layernorm_bwd_ref(const std::vector<float>& dy, const std::vector<float>& x,
                                    const std::vector<float>& weight, std::int64_t rows,
                                    std::int64_t cols, double eps);

}  // namespace seqscale
