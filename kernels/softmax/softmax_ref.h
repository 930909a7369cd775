// CPU reference of the fused softmax (FastFold semantics): y = softmax(scale * x + mask + bias)
// over the last dim of x [B, N, H, rows, cols], mask [B, N, 1, 1, cols] (additive, e.g.
// 1e9 * (m - 1)), bias [B, 1, H, rows, cols] (additive, broadcast over N). A row whose
// logits are all -inf gives zeros. Backward: dx = y * (dy - sum(dy * y)) * scale.
#pragma once
#include <vector>

#include "kernels/softmax/softmax_cost.h"

namespace seqscale {

std::vector<double> softmax_fwd_ref(const std::vector<float>& x, const float* mask, const float* bias,
                                    const SoftmaxShape& s, double scale);
std::vector<double> softmax_bwd_ref(const std::vector<float>& y, const std::vector<float>& dy,
                                    const SoftmaxShape& s, double scale);

}  // namespace seqscale
