// Declared cost of LayerNorm over the last dim: the floors the model prices and the
// harness reports measured time against. Bandwidth-bound: ~9 FLOPs per element forward
// (Welford update + normalise + affine) against 2 element transfers.
#pragma once
#include <cstdint>

#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

// Backward weight/bias gradients reduce per-chunk partials: this many row chunks.
inline std::int64_t layernorm_bwd_row_chunks(std::int64_t rows) { return rows < 64 ? rows : 64; }

inline KernelCost layernorm_fwd_cost(std::int64_t rows, std::int64_t cols, DType io) {
  const double n = static_cast<double>(rows) * cols;
  const double es = static_cast<double>(dtype_bytes(io));
  KernelCost c;
  c.flops = 9.0 * n;
  // read x, write y, read weight+bias once, write fp32 mean and rstd per row
  c.bytes = 2.0 * n * es + 2.0 * cols * es + 8.0 * rows;
  return c;
}

inline KernelCost layernorm_bwd_cost(std::int64_t rows, std::int64_t cols, DType io) {
  const double n = static_cast<double>(rows) * cols;
  const double es = static_cast<double>(dtype_bytes(io));
  KernelCost c;
  c.flops = 14.0 * n;  // dx: ~10 per element; dweight/dbias: 4 per element
  // floor: read dy and x, write dx; read weight, mean, rstd; write fp32 dweight, dbias
  c.bytes = 3.0 * n * es + cols * es + 8.0 * rows + 8.0 * cols;
  c.workspace_bytes = 2 * layernorm_bwd_row_chunks(rows) * cols * 4;
  return c;
}

}  // namespace seqscale
