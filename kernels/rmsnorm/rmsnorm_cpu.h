// RMSNorm on the CPU in fp32: the CPU backend the `rmsnorm_*` CPU benchmarks time and check
// against the double reference (rmsnorm_ref.h), as the CUDA kernel is: one row at a time,
// fp32 sums in sequence, rstd saved for the backward. Not tuned.
#pragma once
#include <cstdint>

namespace seqscale {

// rstd may be null.
void rmsnorm_fwd_cpu(const float* x, const float* weight, std::int64_t rows, std::int64_t cols, float eps, float* y,
                     float* rstd);
// dx from the saved rstd; dweight summed over rows (written, not accumulated; may be null).
void rmsnorm_bwd_cpu(const float* dy, const float* x, const float* weight, const float* rstd, std::int64_t rows,
                     std::int64_t cols, float* dx, float* dweight);

}  // namespace seqscale
