// Bias + GELU on the CPU in fp32: the CPU backend the `bias_gelu_*` CPU benchmarks time and
// check against the double reference (bias_gelu_ref.h), as the CUDA kernel is. It
// evaluates the kernel's own fp32 formulas (bias_gelu_math.h); dbias is summed over rows
// in sequence in fp32. Not tuned: it exists so the CPU path runs the same check-then-time flow.
#pragma once
#include <cstdint>

namespace seqscale {

void bias_gelu_fwd_cpu(const float* x, const float* bias, std::int64_t rows, std::int64_t cols, float* y);
// dbias may be null; written (not accumulated) when given.
void bias_gelu_bwd_cpu(const float* dy, const float* x, const float* bias, std::int64_t rows, std::int64_t cols,
                       float* dx, float* dbias);

}  // namespace seqscale
