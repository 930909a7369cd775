// gemm: cuBLASLt row-major GEMM. Row-major C = A B is column-major C^T = B^T A^T, so we
// describe B as the left operand (n x k, ld n) and A as the right (k x m, ld k): no copies.
// Algorithm: cuBLASLt's top heuristic with our 32 MiB workspace (H100: the heuristic's
// first choice was within a few % of the best of 8 in nvbench-style sweeps upstream).
#include "kernels/gemm/gemm.cuh"

#include <cublas_v2.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "common/check_cublas.h"
#include "kernels/common/convert.cuh"

namespace seqscale {
namespace {

cudaDataType_t cuda_type(DType t) { return cuda_data_type(t); }

}  // namespace

GemmRunner::GemmRunner(void* workspace, std::size_t workspace_bytes)
    : workspace_(workspace), workspace_bytes_(workspace_bytes) {
  CUBLASLT_CHECK(cublasLtCreate(&handle_));
}

GemmRunner::~GemmRunner() {
  for (auto& [key, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.op);
  }
  cublasLtDestroy(handle_);
}

GemmRunner::Plan& GemmRunner::plan_for(const GemmParams& p) {
  const auto key = std::make_tuple(p.m, p.n, p.k, static_cast<int>(p.io));
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;
  const cudaDataType_t t = cuda_type(p.io);
  // fp32 runs are reference runs: keep them in true fp32 (no TF32). PEDANTIC first; if this
  // cuBLASLt has no algorithm for it, CUBLAS_COMPUTE_32F, which cuBLASLt never runs as TF32
  // unless *_FAST_TF32 is asked for (the fp32 GPU test's tolerance would catch TF32).
  std::vector<cublasComputeType_t> computes{CUBLAS_COMPUTE_32F};
  if (p.io == DType::kFp32) computes.insert(computes.begin(), CUBLAS_COMPUTE_32F_PEDANTIC);
  Plan plan;
  // Column-major view: left = B^T (n x k), right = A^T (k x m), out = C^T (n x m).
  CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&plan.b, t, static_cast<std::uint64_t>(p.n), static_cast<std::uint64_t>(p.k), p.n));
  CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&plan.a, t, static_cast<std::uint64_t>(p.k), static_cast<std::uint64_t>(p.m), p.k));
  CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&plan.c, t, static_cast<std::uint64_t>(p.n), static_cast<std::uint64_t>(p.m), p.n));
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &workspace_bytes_, sizeof(workspace_bytes_)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  for (cublasComputeType_t compute : computes) {
    CUBLASLT_CHECK(cublasLtMatmulDescCreate(&plan.op, compute, CUDA_R_32F));
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(handle_, plan.op, plan.b, plan.a, plan.c, plan.c, pref, 1, &result, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0) break;
    if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) {
      cublasLtMatmulPreferenceDestroy(pref);
      CUBLASLT_CHECK(st);
    }
    cublasLtMatmulDescDestroy(plan.op);
    plan.op = nullptr;
    found = 0;
  }
  cublasLtMatmulPreferenceDestroy(pref);
  if (found == 0) {
    cublasLtMatrixLayoutDestroy(plan.a);
    cublasLtMatrixLayoutDestroy(plan.b);
    cublasLtMatrixLayoutDestroy(plan.c);
    throw std::runtime_error("gemm: cuBLASLt found no algorithm for this shape");
  }
  plan.algo = result.algo;
  return plans_.emplace(key, plan).first->second;
}

void GemmRunner::run(const GemmParams& p, cudaStream_t stream) {
  if (p.m <= 0 || p.n <= 0 || p.k <= 0) {
    throw std::invalid_argument("gemm: m, n, k must be positive, got " + std::to_string(p.m) + "," +
                                std::to_string(p.n) + "," + std::to_string(p.k));
  }
  Plan& plan = plan_for(p);
  const float alpha = 1.f, beta = 0.f;
  CUBLASLT_CHECK(cublasLtMatmul(handle_, plan.op, &alpha, p.b, plan.b, p.a, plan.a, &beta, p.c, plan.c, p.c, plan.c,
                                &plan.algo, workspace_, workspace_bytes_, stream));
}

}  // namespace seqscale
