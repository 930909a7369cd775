// Row-major fp32 GEMM on the CPU, C[M,N] = A[M,K] B[K,N], fp32 accumulation (i-k-j order so
// the inner loop streams rows of B and C): the CPU backend the `gemm` CPU benchmark times
// and checks against the double reference. Not tuned: the CPU point exercises the
// check-then-time path; the GPU's ceiling is cuBLASLt's.
#pragma once
#include <cstdint>

namespace seqscale {

void gemm_cpu(const float* a, const float* b, float* c, std::int64_t m, std::int64_t n, std::int64_t k);

}  // namespace seqscale
