// CPU reference GEMM, row-major, double accumulation: C = A[M,K] * B[K,N].
#pragma once
#include "workloads/dtype.h"
#include "common/check_result.h"
#include <cstdint>

namespace seqscale {

// Tolerance against this reference (tests and bench checks): the output is rounded once to
// the dtype (1 ulp relative: 2^-23 fp32, 2^-10 fp16, 2^-7 bf16) plus fp32 accumulation over
// k terms of magnitude <= 1 (1e-6 x k absolute). A TF32 GEMM (10-bit mantissa products)
// fails the fp32 tolerance, as it must.
inline CheckTolerance gemm_tolerance(DType t, std::int64_t k) {
  const double ulp = t == DType::kFp32 ? 1.0 / (1 << 23) : (t == DType::kFp16 ? 1.0 / 1024 : 1.0 / 128);
  return {1e-6 * static_cast<double>(k), ulp, 0};
}

void gemm_ref(const float* a, const float* b, double* c, std::int64_t m, std::int64_t n, std::int64_t k);

}  // namespace seqscale
