// Declared cost of Evoformer attention with pair bias (ANCHORS.md s1; DS4Sci
// EvoformerAttention, OpenFold). Bt = B * N rows of length L, H heads of size D.
//   forward   4 Bt H L^2 D FLOPs (QK^T and PV)
//   backward  8 Bt H L^2 D naive (dV, dP, dQ, dK from the saved probabilities)
//            10 Bt H L^2 D fused (the same plus recomputing QK^T from the log-sum-exp)
// Memory: the naive path materialises Bt H L^2 logits per copy (PyTorch keeps 2-3); the
// fused path keeps an fp32 log-sum-exp [Bt, H, L] and, in backward, an fp32 d(pair bias)
// [B, H, L, L] accumulator.
#pragma once
#include <cstdint>

#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

struct EvoformerAttnShape {
  std::int64_t batch = 1, n = 1, len = 1, heads = 1, head_dim = 1;
  std::int64_t rows() const { return batch * n; }                       // Bt
  std::int64_t qkv_elements() const { return batch * n * len * heads * head_dim; }
  std::int64_t logits_elements() const { return batch * n * heads * len * len; }
};

// One copy of the logits: published check 5120 * 8 * 384^2 * 2 B = 12.08 GB for the
// finetuning extra-MSA row attention (N_extra 5120, 8 heads, N_res 384, bf16).
inline double evoformer_logits_bytes(const EvoformerAttnShape& s, DType t) {
  return static_cast<double>(s.logits_elements()) * static_cast<double>(dtype_bytes(t));
}

inline KernelCost evoformer_attn_fwd_cost(const EvoformerAttnShape& s, DType t, bool pair_bias, bool fused) {
  const double es = static_cast<double>(dtype_bytes(t));
  const double l2 = static_cast<double>(s.len) * static_cast<double>(s.len);
  KernelCost c;
  c.flops = 4.0 * static_cast<double>(s.rows() * s.heads * s.head_dim) * l2;
  c.bytes = 4.0 * static_cast<double>(s.qkv_elements()) * es                      // Q, K, V in; O out
            + static_cast<double>(s.batch * s.n * s.len) * es                       // mask bias
            + (pair_bias ? static_cast<double>(s.batch * s.heads) * l2 * es : 0.0);  // pair bias
  if (fused) {
    c.bytes += 4.0 * static_cast<double>(s.rows() * s.heads * s.len);  // fp32 log-sum-exp out
    c.workspace_bytes = 0;
  } else {
    c.bytes += 2.0 * static_cast<double>(s.logits_elements()) * es;  // probabilities written and read
    c.workspace_bytes = static_cast<std::int64_t>(evoformer_logits_bytes(s, t));
  }
  return c;
}

inline KernelCost evoformer_attn_bwd_cost(const EvoformerAttnShape& s, DType t, bool pair_bias, bool fused) {
  const double es = static_cast<double>(dtype_bytes(t));
  const double l2 = static_cast<double>(s.len) * static_cast<double>(s.len);
  KernelCost c;
  c.flops = (fused ? 10.0 : 8.0) * static_cast<double>(s.rows() * s.heads * s.head_dim) * l2;
  c.bytes = 8.0 * static_cast<double>(s.qkv_elements()) * es  // Q K V O dO in; dQ dK dV out
            + static_cast<double>(s.batch * s.n * s.len) * es;
  if (pair_bias) c.bytes += static_cast<double>(s.batch * s.heads) * l2 * (es + 4.0);  // bias in, fp32 grad out
  if (fused) {
    c.bytes += 4.0 * static_cast<double>(s.rows() * s.heads * s.len);
    c.workspace_bytes = pair_bias ? static_cast<std::int64_t>(4.0 * static_cast<double>(s.batch * s.heads) * l2) : 0;
  } else {
    c.bytes += 2.0 * static_cast<double>(s.logits_elements()) * es;  // saved probabilities read, dP written
    c.workspace_bytes = static_cast<std::int64_t>(evoformer_logits_bytes(s, t));
  }
  return c;
}

}  // namespace seqscale
