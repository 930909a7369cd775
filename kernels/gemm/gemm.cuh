// Row-major GEMM through cuBLASLt: C[M,N] = op(A)[M,K] op(B)[K,N], fp16/bf16 in and out with
// fp32 accumulation, or fp32 (TF32 off) for reference runs, with the epilogues a transformer
// MLP fuses into its GEMMs (Transformer Engine's LayerNormMLP does the same):
//   kBias         C = op(A) op(B) + bias                      bias [N], broadcast over rows
//   kGeluAux      aux = op(A) op(B) + bias (bias optional), C = gelu(aux)
//                 gelu is the tanh approximation (cuBLASLt's, GPT-2 / NeoX / Megatron's)
//   kDGeluBgrad   C = (op(A) op(B)) * gelu'(aux), bias_grad = column sums of C (optional)
// aux is [M, N] row-major with leading dimension N, in C's type; bias and bias_grad [N] in
// C's type too (cuBLASLt's default). The plan (top heuristic algorithm) is cached per
// shape, transposes, epilogue and operand alignment, so timed calls only launch.
#pragma once
#include <cstdint>
#include <map>
#include <tuple>

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "kernels/gemm/gemm_epilogue.h"
#include "workloads/dtype.h"

namespace seqscale {

struct GemmParams {
  const void* a = nullptr;
  const void* b = nullptr;
  void* c = nullptr;
  std::int64_t m = 0, n = 0, k = 0;
  DType io = DType::kBf16;
  bool trans_a = false, trans_b = false;  // A stored [K, M] / B stored [N, K] (row-major)
  GemmEpilogue epilogue = GemmEpilogue::kNone;
  const void* bias = nullptr;  // kBias (required), kGeluAux (optional)
  void* bias_grad = nullptr;   // kDGeluBgrad (optional), written
  void* aux = nullptr;         // kGeluAux: written; kDGeluBgrad: read
};

class GemmRunner {
 public:
  GemmRunner(void* workspace, std::size_t workspace_bytes);
  ~GemmRunner();
  GemmRunner(const GemmRunner&) = delete;
  GemmRunner& operator=(const GemmRunner&) = delete;
  // Throws std::runtime_error when cuBLASLt has no algorithm for the call.
  void run(const GemmParams& p, cudaStream_t stream);
  // False (nothing launched) when cuBLASLt has no algorithm for this shape, epilogue and
  // alignment, e.g. an epilogue's aux leading dimension not a multiple of 8: the caller
  // runs the GEMM and the epilogue apart. The answer is cached like a plan.
  bool try_run(const GemmParams& p, cudaStream_t stream);

 private:
  struct Plan {
    bool found = false;
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  // m, n, k, io, trans_a, trans_b, epilogue, bias given, bias_grad given, alignment (bytes).
  using Key = std::tuple<std::int64_t, std::int64_t, std::int64_t, int, bool, bool, int, bool, bool, std::uint32_t>;
  Plan& plan_for(const GemmParams& p);
  void set_pointers(const Plan& plan, const GemmParams& p);

  cublasLtHandle_t handle_ = nullptr;
  void* workspace_;
  std::size_t workspace_bytes_;
  std::map<Key, Plan> plans_;
};

}  // namespace seqscale
