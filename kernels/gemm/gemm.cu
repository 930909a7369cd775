// gemm: cuBLASLt row-major GEMM. Row-major C = op(A) op(B) is column-major
// C^T = op(B)^T op(A)^T, so B is described as the left operand and A as the right: no
// copies. The epilogues then see C^T [N, M]: the bias (and its gradient) runs along C^T's
// rows, i.e. one value per column of C, and aux has C^T's leading dimension N.
// Algorithm: cuBLASLt's top heuristic with our workspace (32 MiB on Hopper; the heuristic's
// first choice was within a few % of the best of 8 in nvbench-style sweeps upstream). The
// heuristic reads the bias and aux pointers' values for their alignment, and we tell it
// the operands' (a pool's views need not be 256-byte aligned), so both are in the plan key.
#include "kernels/gemm/gemm.cuh"

#include <cublas_v2.h>

#include <algorithm>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/check_cublas.h"
#include "kernels/common/convert.cuh"

namespace seqscale {
namespace {

// The largest power of two up to 256 that divides the address (cuBLASLt's default
// assumption is 256).
std::uint32_t alignment_of(const void* p) {
  if (p == nullptr) return 256;
  const auto v = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t a = 256;
  while (a > 1 && v % a != 0) a /= 2;
  return a;
}

std::uint32_t alignment_of(const GemmParams& p) {
  std::uint32_t a = 256;
  for (const void* q : {p.a, p.b, static_cast<const void*>(p.c), p.bias, static_cast<const void*>(p.bias_grad),
                        static_cast<const void*>(p.aux)}) {
    a = std::min(a, alignment_of(q));
  }
  return a;
}

cublasLtEpilogue_t lt_epilogue(const GemmParams& p) {
  switch (p.epilogue) {
    case GemmEpilogue::kBias: return CUBLASLT_EPILOGUE_BIAS;
    case GemmEpilogue::kGeluAux: return p.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    case GemmEpilogue::kDGeluBgrad: return p.bias_grad ? CUBLASLT_EPILOGUE_DGELU_BGRAD : CUBLASLT_EPILOGUE_DGELU;
    case GemmEpilogue::kNone: break;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

bool has_aux(const GemmParams& p) {
  return p.epilogue == GemmEpilogue::kGeluAux || p.epilogue == GemmEpilogue::kDGeluBgrad;
}

void validate(const GemmParams& p) {
  if (p.m <= 0 || p.n <= 0 || p.k <= 0) {
    throw std::invalid_argument("gemm: m, n, k must be positive, got " + std::to_string(p.m) + "," +
                                std::to_string(p.n) + "," + std::to_string(p.k));
  }
  if (!p.a || !p.b || !p.c) throw std::invalid_argument("gemm: a, b and c must not be null");
  if (p.epilogue == GemmEpilogue::kBias && !p.bias) throw std::invalid_argument("gemm: bias is null (epilogue bias)");
  if (has_aux(p) && !p.aux) throw std::invalid_argument("gemm: aux is null (a GELU epilogue)");
  if (p.epilogue != GemmEpilogue::kDGeluBgrad && p.bias_grad) {
    throw std::invalid_argument("gemm: bias_grad is only written by the dgelu_bgrad epilogue");
  }
  if (p.epilogue == GemmEpilogue::kDGeluBgrad && p.bias) {
    throw std::invalid_argument("gemm: bias is not read by the dgelu_bgrad epilogue (its gradient is bias_grad)");
  }
}

template <typename V>
void set_desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, const V& v) {
  CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(d, attr, &v, sizeof(v)));
}

}  // namespace

GemmRunner::GemmRunner(void* workspace, std::size_t workspace_bytes)
    : workspace_(workspace), workspace_bytes_(workspace_bytes) {
  CUBLASLT_CHECK(cublasLtCreate(&handle_));
}

GemmRunner::~GemmRunner() {
  for (auto& [key, p] : plans_) {
    if (!p.found) continue;
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.op);
  }
  cublasLtDestroy(handle_);
}

// The pointers of this call: the heuristic reads their values (alignment), and every call
// sets them again, since one plan serves every call of its key.
void GemmRunner::set_pointers(const Plan& plan, const GemmParams& p) {
  const void* bias = p.epilogue == GemmEpilogue::kDGeluBgrad ? static_cast<const void*>(p.bias_grad) : p.bias;
  if (bias) set_desc(plan.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias);
  if (has_aux(p)) set_desc(plan.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, static_cast<const void*>(p.aux));
}

GemmRunner::Plan& GemmRunner::plan_for(const GemmParams& p) {
  const std::uint32_t align = alignment_of(p);
  const Key key{p.m, p.n, p.k, static_cast<int>(p.io), p.trans_a, p.trans_b, static_cast<int>(p.epilogue),
                p.bias != nullptr, p.bias_grad != nullptr, align};
  if (auto it = plans_.find(key); it != plans_.end()) return it->second;
  Plan plan;
  // cuBLASLt's GELU aux needs a leading dimension that is a multiple of 8: no algorithm.
  if (has_aux(p) && p.n % 8 != 0) return plans_.emplace(key, plan).first->second;
  const cudaDataType_t t = cuda_data_type(p.io);
  // fp32 runs are reference runs: keep them in true fp32 (no TF32). PEDANTIC first; if this
  // cuBLASLt has no algorithm for it, CUBLAS_COMPUTE_32F, which cuBLASLt never runs as TF32
  // unless *_FAST_TF32 is asked for (the fp32 GPU test's tolerance would catch TF32).
  std::vector<cublasComputeType_t> computes{CUBLAS_COMPUTE_32F};
  if (p.io == DType::kFp32) computes.insert(computes.begin(), CUBLAS_COMPUTE_32F_PEDANTIC);
  const auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
  // Column-major view: left = op(B)^T [n, k], right = op(A)^T [k, m], out = C^T [n, m].
  if (p.trans_b) CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&plan.b, t, u(p.k), u(p.n), p.k));
  else CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&plan.b, t, u(p.n), u(p.k), p.n));
  if (p.trans_a) CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&plan.a, t, u(p.m), u(p.k), p.m));
  else CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&plan.a, t, u(p.k), u(p.m), p.k));
  CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&plan.c, t, u(p.n), u(p.m), p.n));
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &workspace_bytes_, sizeof(workspace_bytes_)));
  for (cublasLtMatmulPreferenceAttributes_t attr :
       {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
    CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &align, sizeof(align)));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  for (std::size_t ci = 0; ci < computes.size(); ++ci) {
    const cublasComputeType_t compute = computes[ci];
    const bool last = ci + 1 == computes.size();
    CUBLASLT_CHECK(cublasLtMatmulDescCreate(&plan.op, compute, CUDA_R_32F));
    set_desc(plan.op, CUBLASLT_MATMUL_DESC_TRANSA, p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N);
    set_desc(plan.op, CUBLASLT_MATMUL_DESC_TRANSB, p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N);
    set_desc(plan.op, CUBLASLT_MATMUL_DESC_EPILOGUE, lt_epilogue(p));
    if (has_aux(p)) set_desc(plan.op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, static_cast<std::int64_t>(p.n));
    set_pointers(plan, p);
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(handle_, plan.op, plan.b, plan.a, plan.c, plan.c, pref, 1, &result, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0) break;
    // A compute type this cuBLASLt refuses (PEDANTIC may be answered NOT_SUPPORTED or
    // INVALID_VALUE) passes to the next; on the last, only "no algorithm" is an answer.
    if (last && st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) {
      cublasLtMatmulDescDestroy(plan.op);
      cublasLtMatmulPreferenceDestroy(pref);
      cublasLtMatrixLayoutDestroy(plan.a);
      cublasLtMatrixLayoutDestroy(plan.b);
      cublasLtMatrixLayoutDestroy(plan.c);
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
    return plans_.emplace(key, Plan{}).first->second;
  }
  plan.found = true;
  plan.algo = result.algo;
  return plans_.emplace(key, plan).first->second;
}

bool GemmRunner::try_run(const GemmParams& p, cudaStream_t stream) {
  validate(p);
  Plan& plan = plan_for(p);
  if (!plan.found) return false;
  set_pointers(plan, p);
  const float alpha = 1.f, beta = 0.f;
  CUBLASLT_CHECK(cublasLtMatmul(handle_, plan.op, &alpha, p.b, plan.b, p.a, plan.a, &beta, p.c, plan.c, p.c, plan.c,
                                &plan.algo, workspace_, workspace_bytes_, stream));
  return true;
}

void GemmRunner::run(const GemmParams& p, cudaStream_t stream) {
  if (!try_run(p, stream)) throw std::runtime_error("gemm: cuBLASLt found no algorithm for this shape");
}

}  // namespace seqscale
