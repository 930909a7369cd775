// CPU reference for LayerNorm forward and backward: double accumulation, inputs already
// rounded to the kernel's dtype (as float), outputs in double for comparison.
#pragma once
#include <cstdint>
#include <vector>

namespace seqscale {

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
