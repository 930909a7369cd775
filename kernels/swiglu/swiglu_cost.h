// Declared cost of the SwiGLU gate y = silu(a) * g over x = [a | g] of [rows, 2 ffn]:
// the floors the model prices. Bandwidth-bound: ~5 FLOPs per output (one exp, a divide,
// two products; exp counted as one) against 3 element transfers forward (read a and g,
// write y), 5 backward (read a, g and dy, write da and dg). Llama-7B's MLP at 32768
// tokens (ffn 11008, bf16): the forward moves 2.2 GB, 0.45 ms at 4.8 TB/s.
#pragma once
#include <cstdint>

#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

inline KernelCost swiglu_fwd_cost(std::int64_t rows, std::int64_t ffn, DType io) {
  const double n = static_cast<double>(rows) * static_cast<double>(ffn);  // outputs
  KernelCost c;
  c.flops = 5.0 * n;
  c.bytes = 3.0 * n * static_cast<double>(dtype_bytes(io));
  return c;
}

inline KernelCost swiglu_bwd_cost(std::int64_t rows, std::int64_t ffn, DType io) {
  const double n = static_cast<double>(rows) * static_cast<double>(ffn);
  KernelCost c;
  c.flops = 10.0 * n;  // two sigmoids, silu, silu' and the three products
  c.bytes = 5.0 * n * static_cast<double>(dtype_bytes(io));
  return c;
}

}  // namespace seqscale
