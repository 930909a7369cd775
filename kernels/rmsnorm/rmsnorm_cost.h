// Declared cost of RMSNorm over the last dim C: the floors the model prices and the
// harness reports measured time against. Bandwidth-bound: ~4 FLOPs per element forward
// (square-accumulate, scale, weight) against 2 element transfers; the backward reads dy
// and x and writes dx (~8 FLOPs per element with dweight).
#pragma once
#include <algorithm>
#include <cstdint>

#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

// Backward's dweight sums over rows in this many row chunks (fp32 partials [chunks, cols],
// then a fixed-order sum): at least 32 rows a chunk, at most 128 chunks (H100/H200: at
// cols 6144 in bf16, 3 column blocks x 128 chunks, each CTA streaming 256 rows at 32768).
inline std::int64_t rmsnorm_bwd_row_chunks(std::int64_t rows) { return std::clamp<std::int64_t>((rows + 31) / 32, 1, 128); }

inline KernelCost rmsnorm_fwd_cost(std::int64_t rows, std::int64_t cols, DType io) {
  const double n = static_cast<double>(rows) * static_cast<double>(cols);
  const double es = static_cast<double>(dtype_bytes(io));
  KernelCost c;
  c.flops = 4.0 * n;
  // read x, write y, read weight once, write fp32 rstd per row
  c.bytes = 2.0 * n * es + static_cast<double>(cols) * es + 4.0 * static_cast<double>(rows);
  return c;
}

// with_dweight: dweight [cols] in fp32 is computed too (it needs the workspace).
inline KernelCost rmsnorm_bwd_cost(std::int64_t rows, std::int64_t cols, DType io, bool with_dweight = true) {
  const double n = static_cast<double>(rows) * static_cast<double>(cols);
  const double es = static_cast<double>(dtype_bytes(io));
  KernelCost c;
  c.flops = (with_dweight ? 8.0 : 6.0) * n;  // dx: ~6 per element (one row reduction); dweight: 2
  // floor: read dy and x, write dx; read weight and rstd; write fp32 dweight
  c.bytes = 3.0 * n * es + static_cast<double>(cols) * es + 4.0 * static_cast<double>(rows) +
            (with_dweight ? 4.0 * static_cast<double>(cols) : 0.0);
  c.workspace_bytes = with_dweight ? rmsnorm_bwd_row_chunks(rows) * cols * 4 : 0;
  return c;
}

}  // namespace seqscale
