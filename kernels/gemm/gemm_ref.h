// CPU reference GEMM, row-major, double accumulation: C = A[M,K] * B[K,N].
#pragma once
#include <cstdint>

namespace seqscale {

void gemm_ref(const float* a, const float* b, double* c, std::int64_t m, std::int64_t n, std::int64_t k);

}  // namespace seqscale
