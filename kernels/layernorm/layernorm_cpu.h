// LayerNorm on the CPU in fp32, the CPU backend the `layernorm_*` CPU benchmarks time and
// check against the double reference (layernorm_ref.h), as the CUDA kernel is: one row at
// a time, two-pass mean and variance with fp32 accumulation, the statistics saved for the
// backward. Not tuned: it exists so the CPU path runs the same check-then-time flow.
#pragma once
#include <cstdint>

namespace seqscale {

void layernorm_fwd_cpu(const float* x, const float* weight, const float* bias, std::int64_t rows,
                       std::int64_t cols, float eps, float* y, float* mean, float* rstd);
// dx from the saved mean/rstd; dweight/dbias summed over rows (written, not accumulated).
void layernorm_bwd_cpu(const float* dy, const float* x, const float* weight, const float* mean,
                       const float* rstd, std::int64_t rows, std::int64_t cols, float* dx, float* dweight,
                       float* dbias);

}  // namespace seqscale
