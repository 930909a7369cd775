// CPU reference GEMM, row-major, double accumulation: C = A[M,K] * B[K,N], and the
// epilogues gemm.cuh fuses (gemm_epilogue.h) applied to it in double.
#pragma once
#include "workloads/dtype.h"
#include "common/check_result.h"
#include "kernels/gemm/gemm_epilogue.h"
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

// The epilogue on the product c [m, n] (gemm_ref's output), in place: kBias adds bias [n];
// kGeluAux writes aux_out = c + bias (bias may be null) and c = gelu(aux_out); kDGeluBgrad
// c *= gelu'(aux_in) and, when bias_grad is given, bias_grad = the column sums of c.
void gemm_epilogue_ref(GemmEpilogue e, double* c, std::int64_t m, std::int64_t n, const float* bias,
                       const float* aux_in, double* aux_out, double* bias_grad);

}  // namespace seqscale
