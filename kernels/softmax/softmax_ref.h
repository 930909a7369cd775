// CPU reference of the fused softmax (FastFold semantics): y = softmax(scale * x + mask + bias)
// over the last dim of x [B, N, H, rows, cols], mask [B, N, 1, 1, cols] (additive, e.g.
// 1e9 * (m - 1)), bias [B, 1, H, rows, cols] (additive, broadcast over N). A row whose
// logits are all -inf gives zeros. Backward: dx = y * (dy - sum(dy * y)) * scale.
#pragma once
#include "workloads/dtype.h"
#include "common/check_result.h"
#include <vector>

#include "kernels/softmax/softmax_cost.h"

namespace seqscale {

// Tolerances against this reference (tests and bench checks): outputs are probabilities
// rounded once to the dtype with fp32 math inside: 2 ulp of the dtype relative (1e-6 for
// fp32) + 1e-6 absolute. The backward's dot product adds rounding: 4 ulp relative with a
// floor of 4 ulp x 1e-3.
inline double softmax_ulp(DType t) { return t == DType::kFp32 ? 1e-6 : (t == DType::kFp16 ? 2.0 / 1024 : 2.0 / 128); }
inline CheckTolerance softmax_fwd_tolerance(DType t) { return {1e-6, softmax_ulp(t), 0}; }
// fp32's floor is 2e-7, not 4e-9: the kernel's float dot product (per-lane fma, xor
// butterfly) is off by up to ~2e-8 at y ~ 0.9 (a host emulation of its reduction order
// failed a 4e-9 floor in ~10% of random runs and passed 2e-7 in 400 of 400).
inline CheckTolerance softmax_bwd_tolerance(DType t) {
  return {t == DType::kFp32 ? 2e-7 : 4 * softmax_ulp(t) * 1e-3, 4 * softmax_ulp(t), 0};
}

std::vector<double> softmax_fwd_ref(const std::vector<float>& x, const float* mask, const float* bias,
                                    const SoftmaxShape& s, double scale);
std::vector<double> softmax_bwd_ref(const std::vector<float>& y, const std::vector<float>& dy,
                                    const SoftmaxShape& s, double scale);

}  // namespace seqscale
