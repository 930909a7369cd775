// StrategyMath on the GPU: cuBLAS GEMMs in true fp32 (CUBLAS_COMPUTE_32F_PEDANTIC, no
// TF32), a row-softmax kernel and its backward for attention, one elementwise Adam kernel.
// The operands stay host-resident: every call copies its inputs to device scratch, runs
// on one stream, copies the results back and synchronises. So this checks that the
// strategies compute the same step on the GPU kernels as on the host reference (see
// NcclGpu.StrategiesRunOverNccl); it is not a performance path, and the staging copies
// dominate its time. Performance is priced by the cost model and measured by the harness
// on device-resident programs.
// Built into seqscale_cuda only (SEQSCALE_HAVE_CUDA); plain header, no CUDA includes.
// Status: compiles for sm_80/sm_90 but has not run on a GPU yet (its tests,
// CudaStrategyMath.* and NcclGpu.StrategiesRunOverNccl, report Skipped without one).
#pragma once
#include <memory>

#include "comm/strategies/strategy_math.h"

namespace seqscale::comm {

// cuda_stream: a cudaStream_t passed as void* (the harness's convention, as in
// nccl_set_stream); nullptr creates and owns a stream. Uses the current device.
// Not thread-safe: one instance per thread (its scratch is reused across calls).
std::unique_ptr<StrategyMath> make_cuda_strategy_math(void* cuda_stream = nullptr);

}  // namespace seqscale::comm
