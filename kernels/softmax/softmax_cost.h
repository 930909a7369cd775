// Declared cost of the fused (masked, biased) softmax over the last dim, in place.
// Bandwidth-bound: forward reads x (+ the broadcast biases) and writes y; backward reads y
// and dy and writes dx. Biases are broadcast, so their traffic is counted once.
#pragma once
#include <cstdint>

#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

struct SoftmaxShape {
  std::int64_t batch = 1, n = 1, heads = 1, rows = 1, cols = 1;  // x is [B, N, H, rows, cols]
  std::int64_t elements() const { return batch * n * heads * rows * cols; }
};

inline KernelCost softmax_fwd_cost(const SoftmaxShape& s, DType io, bool mask, bool bias) {
  const double e = static_cast<double>(s.elements()), es = static_cast<double>(dtype_bytes(io));
  KernelCost c;
  c.flops = 5.0 * e;  // scale, add biases, subtract max, exp, normalise
  c.bytes = 2.0 * e * es;
  if (mask) c.bytes += static_cast<double>(s.batch * s.n * s.cols) * es;                     // [B, N, 1, 1, cols]
  if (bias) c.bytes += static_cast<double>(s.batch * s.heads * s.rows * s.cols) * es;        // [B, 1, H, rows, cols]
  return c;
}

inline KernelCost softmax_bwd_cost(const SoftmaxShape& s, DType io) {
  const double e = static_cast<double>(s.elements()), es = static_cast<double>(dtype_bytes(io));
  return KernelCost{4.0 * e, 3.0 * e * es, 0};
}

}  // namespace seqscale
