// The fused softmax on the CPU in fp32 (FastFold semantics, softmax_ref.h): the CPU backend
// the `softmax_fwd` CPU benchmark times and checks against the double reference, as the
// CUDA kernel is. In place allowed (y == x). Not tuned.
#pragma once
#include "kernels/softmax/softmax_cost.h"

namespace seqscale {

void softmax_fwd_cpu(const float* x, float* y, const float* mask, const float* bias, const SoftmaxShape& s,
                     float scale);

}  // namespace seqscale
