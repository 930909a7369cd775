// Declared cost of rotary position embedding (RoPE) on x [batch, seq, heads, head_dim],
// rotating the first rotary_dims of each head: the floors the model prices. The backward
// is the same rotation by -theta, so one declaration serves both. Bandwidth-bound: 3
// FLOPs per rotated element (a pair costs 4 products and 2 sums; the angles are per
// (token, pair), shared by every head) against 2 element transfers. In place, only the
// rotated dims move: GPT-NeoX's rotary_pct = 0.25 moves a quarter of what an out-of-place
// call does (which copies the pass-through dims too, as NeoX's torch.cat does).
// GenSLM's q at 32768 tokens x 64 heads x 96 (bf16): 201 MB in place, 805 MB out of place.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>

#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

// GPT-NeoX: rotary_ndims = int(head_dim * rotary_pct); the rotate-half split needs it even.
// One-line std::invalid_argument naming rotary_pct when it is outside [0, 1] or the result is odd.
inline std::int64_t rotary_dims_of(std::int64_t head_dim, double rotary_pct) {
  if (!(rotary_pct >= 0.0 && rotary_pct <= 1.0)) {
    throw std::invalid_argument("rotary_pct must be in [0, 1], got " + std::to_string(rotary_pct));
  }
  const auto dims = static_cast<std::int64_t>(static_cast<double>(head_dim) * rotary_pct);
  if (dims % 2 != 0) {
    throw std::invalid_argument("rotary_pct " + std::to_string(rotary_pct) + " of head_dim " + std::to_string(head_dim) +
                                " gives " + std::to_string(dims) + " rotary dims; rotate-half needs an even number");
  }
  return dims;
}

// x [batch, seq, heads, head_dim]; a row is one head vector (b, s, h) at position s + position_offset.
struct RotaryShape {
  std::int64_t batch = 1, seq = 1, heads = 1, head_dim = 1;
  std::int64_t rotary_dims = 0;      // even, in [0, head_dim]: rotary_dims_of(head_dim, rotary_pct)
  std::int64_t position_offset = 0;  // position of s = 0 (a sequence-parallel shard's first token)
  double base = 10000.0;
  std::int64_t rows() const { return batch * seq * heads; }
  std::int64_t elements() const { return rows() * head_dim; }
  std::int64_t position_of_row(std::int64_t row) const { return row / heads % seq + position_offset; }
};

inline KernelCost rotary_cost(const RotaryShape& s, DType io, bool in_place) {
  const double rows = static_cast<double>(s.rows());
  KernelCost c;
  c.flops = 3.0 * rows * static_cast<double>(s.rotary_dims);
  c.bytes = 2.0 * rows * static_cast<double>(in_place ? s.rotary_dims : s.head_dim) * static_cast<double>(dtype_bytes(io));
  return c;
}

}  // namespace seqscale
