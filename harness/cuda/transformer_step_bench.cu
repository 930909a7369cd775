// Suite "steps" on the GPU: the model's StepProgram for one rank executed with real
// stream-ordered allocations for every memory event and cuBLAS bf16 GEMMs (fp32
// accumulation) of each compute op's declared FLOPs. The pool's high-water mark is the
// measured peak; the event-timed step gives tokens/s, TFLOP/s and MFU beside the model's
// predicted step time (metrics model_step_s, model_peak_bytes).
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "harness/steps/step_executor.h"
#include "harness/steps/transformer_step.h"
#include "kernels/common/check.h"

namespace seqscale {
namespace {

SEQSCALE_BENCH(transformer_step_cuda, "transformer_step", "steps", Backend::kCuda, [](BenchState& s) {
  const TransformerStepSetup setup = make_transformer_step(s);
  s.set_metric("replay_peak_bytes", static_cast<double>(replay_memory_events(setup.program, s)));
  // Operand blocks sized for the widest GEMM (N blocks of at most K columns).
  const std::int64_t m = setup.tokens, k = setup.k;
  void* a = s.alloc(static_cast<std::size_t>(m * k * 2));
  void* b = s.alloc(static_cast<std::size_t>(k * k * 2));
  void* c = s.alloc(static_cast<std::size_t>(m * k * 2));
  s.fill_random(a, m * k, DType::kBf16, 1);
  s.fill_random(b, k * k, DType::kBf16, 2);
  s.no_check("synthetic step: FLOP-equivalent GEMMs with no reference output (the real layer is issue 14)");
  cublasHandle_t handle = nullptr;  // created on first exec: bodies touch the device only there
  s.exec([&](void* stream) {
    if (!handle) CUBLAS_CHECK(cublasCreate(&handle));
    CUBLAS_CHECK(cublasSetStream(handle, static_cast<cudaStream_t>(stream)));
    const float alpha = 1.f, beta = 0.f;
    run_compute_ops(setup.program, m, k, [&](const GemmShape& g) {
      for (std::int64_t blk = 0; blk < g.blocks; ++blk) {
        // Column-major C[n x m] = B[n x k] * A[k x m]: the row-major M x N product.
        CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(g.block_n), static_cast<int>(g.m),
                                  static_cast<int>(g.k), &alpha, b, CUDA_R_16BF, static_cast<int>(g.block_n), a,
                                  CUDA_R_16BF, static_cast<int>(g.k), &beta, c, CUDA_R_16BF,
                                  static_cast<int>(g.block_n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      }
    });
  });
  if (handle) cublasDestroy(handle);
});

}  // namespace
}  // namespace seqscale
