// Declared cost of bias + GELU over x [rows, cols] with a bias [cols]: the floors the
// model prices and the harness reports measured time against. Bandwidth-bound: ~10 FLOPs
// per element (bias add, the cubic, one exp, a divide; exp counted as one) against 2
// element transfers forward (2.5 FLOP/B in bf16, far below even H100's fp32 CUDA-core
// ridge of ~20 FLOP/B), 3 backward.
// GenSLM's MLP (tokens 32768 x ffn 24576, bf16): forward moves 3.2 GB, 0.67 ms at 4.8 TB/s.
#pragma once
#include <algorithm>
#include <cstdint>

#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

// Backward's dbias sums dx over rows in this many row chunks (fp32 partials [chunks, cols],
// then a fixed-order sum): at least 32 rows a chunk, at most 128 chunks (H100/H200: 12
// column blocks x 128 chunks = 1536 CTAs at cols 24576 in bf16, > 8 per SM).
inline std::int64_t bias_gelu_bwd_row_chunks(std::int64_t rows) {
  return std::clamp<std::int64_t>((rows + 31) / 32, 1, 128);
}

inline KernelCost bias_gelu_fwd_cost(std::int64_t rows, std::int64_t cols, DType io) {
  const double n = static_cast<double>(rows) * static_cast<double>(cols);
  const double es = static_cast<double>(dtype_bytes(io));
  KernelCost c;
  c.flops = 10.0 * n;
  c.bytes = 2.0 * n * es + static_cast<double>(cols) * es;  // read x, write y; the bias once
  return c;
}

// with_dbias: dbias [cols] in fp32 is computed too (it needs the workspace).
inline KernelCost bias_gelu_bwd_cost(std::int64_t rows, std::int64_t cols, DType io, bool with_dbias = true) {
  const double n = static_cast<double>(rows) * static_cast<double>(cols);
  const double es = static_cast<double>(dtype_bytes(io));
  KernelCost c;
  c.flops = 14.0 * n;  // gelu' (two exps) and the product; +1 per element for dbias
  // floor: read dy and x, write dx; the bias once; dbias written in fp32
  c.bytes = 3.0 * n * es + static_cast<double>(cols) * es + (with_dbias ? 4.0 * static_cast<double>(cols) : 0.0);
  c.workspace_bytes = with_dbias ? bias_gelu_bwd_row_chunks(rows) * cols * 4 : 0;
  return c;
}

}  // namespace seqscale
