// Declared cost of C[M,N] = A[M,K] B[K,N] (row-major), the op every transformer and
// Evoformer projection is made of. Compute-bound above ~150 FLOP/B on A100/H100 bf16.
#pragma once
#include <cstdint>

#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

inline KernelCost gemm_cost(std::int64_t m, std::int64_t n, std::int64_t k, DType io) {
  const double es = static_cast<double>(dtype_bytes(io));
  KernelCost c;
  c.flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  c.bytes = es * (static_cast<double>(m) * k + static_cast<double>(k) * n + static_cast<double>(m) * n);
  c.workspace_bytes = 32 << 20;  // cuBLASLt workspace we hand it (Hopper kernels want 32 MiB)
  return c;
}

// Device-to-device copy of `bytes`: read once, write once.
inline KernelCost copy_cost(std::int64_t bytes) { return KernelCost{0, 2.0 * static_cast<double>(bytes), 0}; }

}  // namespace seqscale
