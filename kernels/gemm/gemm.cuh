// Row-major GEMM through cuBLASLt: C[M,N] = A[M,K] B[K,N], fp16/bf16 in and out with fp32
// accumulation, or fp32 (TF32 off) for reference runs. The plan (heuristic algorithm
// choice) is cached per shape in the GemmRunner, so timed calls only launch.
#pragma once
#include <cstdint>
#include <map>
#include <tuple>

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "workloads/dtype.h"

namespace seqscale {

struct GemmParams {
  const void* a = nullptr;
  const void* b = nullptr;
  void* c = nullptr;
  std::int64_t m = 0, n = 0, k = 0;
  DType io = DType::kBf16;
};

class GemmRunner {
 public:
  GemmRunner(void* workspace, std::size_t workspace_bytes);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;
  void run(const GemmParams& p, cudaStream_t stream);

 private:
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  Plan& plan_for(const GemmParams& p);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_;
  std::size_t workspace_bytes_;
  std::map<std::tuple<std::int64_t, std::int64_t, std::int64_t, int>, Plan> plans_;
};

}  // namespace seqscale
