// CPU reference of the SwiGLU gate, forward and backward, in double, on inputs already
// rounded to the kernel's dtype (as float); outputs in double for comparison.
//   x = [a | g] [rows, 2 ffn];  y = a sigmoid(a) g  [rows, ffn]
//   da = dy g sigmoid(a) (1 + a (1 - sigmoid(a))),  dg = dy a sigmoid(a)   (Megatron's swiglu_back)
#pragma once
#include <cstdint>
#include <vector>

#include "common/check_result.h"
#include "kernels/common/rounding.h"
#include "workloads/dtype.h"

namespace seqscale {

// Tolerances of a SwiGLU kernel against this reference (tests and bench checks): each
// output is one fp32 evaluation (an exp, a divide, two or three products: a few ulp,
// rel 1e-5) rounded once to the dtype (io_rounding_rel), with an absolute 1e-6 where da
// crosses zero (silu' vanishes at a ~ -1.28: its two terms of size ~0.3 cancel there).
inline CheckTolerance swiglu_y_tolerance(DType t) { return {1e-6, 1e-5 + io_rounding_rel(t), 0}; }
inline CheckTolerance swiglu_dx_tolerance(DType t) { return {1e-6, 2e-5 + io_rounding_rel(t), 0}; }

// Pointer forms: x [rows, 2 ffn], y and dy [rows, ffn], dx [rows, 2 ffn].
void swiglu_fwd_ref(const float* x, std::int64_t rows, std::int64_t ffn, double* y);
void swiglu_bwd_ref(const float* dy, const float* x, std::int64_t rows, std::int64_t ffn, double* dx);

std::vector<double> swiglu_fwd_ref(const std::vector<float>& x, std::int64_t rows, std::int64_t ffn);
std::vector<double> swiglu_bwd_ref(const std::vector<float>& dy, const std::vector<float>& x, std::int64_t rows,
                                   std::int64_t ffn);

}  // namespace seqscale
