// Declared cost of causal (GPT-NeoX / GenSLM) fused attention, exact, forward and backward,
// in plain C++ so the model, the benches and `calibrate` share it. Shape: batch B, sequence
// S, heads H, head size D; Q, K, V, O [B, S, H, D].
//
// FLOPs, FlashAttention's convention (Dao 2023, FlashAttention-2 s4.1 and its benchmark
// script): a non-causal forward is 4 B H S^2 D (Q K^T and P V, 2 FLOPs a multiply-add);
// causal counts half of it, 2 B H S^2 D (the S(S+1)/2 dot products, rounded to S^2/2); the
// backward is 2.5x the forward, 5 B H S^2 D (five S x S x D products: Q K^T recomputed,
// dP = dO V^T, dV = P^T dO, dK = dS^T Q, dQ = dS K). These are the useful FLOPs: the
// deterministic backward recomputes Q K^T and dO V^T once more for dQ (7 products, not 5),
// and that extra work is overhead, not counted, so TFLOP/s compare across modes.
//
// Bytes (compulsory DRAM traffic): forward reads Q, K, V and writes O in the I/O dtype and
// the fp32 log-sum-exp [B, H, S]; backward reads Q, K, V, O, dO and writes dQ, dK, dV, reads
// the log-sum-exp and writes then reads D_i = dO_i . O_i [B, H, S] (fp32). The atomic
// backward also zeroes, accumulates (write-back from L2) and reads an fp32 dQ accumulator
// [B, H, S, D]: 3 passes of 4 bytes an element.
#pragma once
#include <cstdint>

#include "workloads/dtype.h"
#include "workloads/step_program.h"

namespace seqscale {

struct CausalAttentionShape {
  std::int64_t batch = 1, seq = 1, heads = 1, head_dim = 64;
  std::int64_t elements() const { return batch * seq * heads * head_dim; }  // one of Q, K, V, O
  std::int64_t rows() const { return batch * heads * seq; }                 // the log-sum-exp's entries
};

// How the backward forms dQ (tensor-core kernels; the SIMT kernels are deterministic by
// construction). kAtomic, the default as in FlashAttention-2 and PyTorch's SDPA: one pass
// over the key tiles adds each tile's dS K into an fp32 accumulator with atomics (the fewest
// FLOPs; the last bits depend on the order the atomics land). kDeterministic: a second
// kernel loops over key tiles in order per query tile (no atomics, bitwise repeatable,
// ~1.4x the backward's tensor-core work: 7 S x S x D products instead of 5, since the dQ
// pass recomputes Q K^T and dO V^T before its dS K; derived, not measured).
enum class CausalBwdMode : std::uint8_t { kAtomic, kDeterministic };

inline double causal_attention_fwd_flops(const CausalAttentionShape& s) {
  const double seq = static_cast<double>(s.seq);
  return 2.0 * static_cast<double>(s.batch * s.heads * s.head_dim) * seq * seq;
}

inline double causal_attention_bwd_flops(const CausalAttentionShape& s) { return 2.5 * causal_attention_fwd_flops(s); }

inline KernelCost causal_attention_fwd_cost(const CausalAttentionShape& s, DType io) {
  KernelCost c;
  c.flops = causal_attention_fwd_flops(s);
  c.bytes = 4.0 * static_cast<double>(s.elements()) * static_cast<double>(dtype_bytes(io))  // Q, K, V in; O out
            + 4.0 * static_cast<double>(s.rows());                                          // log-sum-exp out
  c.workspace_bytes = 0;
  return c;
}

// Workspace of the backward: D_i (fp32 [B, H, S]) and, in atomic mode on tensor cores, the
// fp32 dQ accumulator [B, H, S, D].
inline std::int64_t causal_attention_bwd_workspace_bytes(const CausalAttentionShape& s, CausalBwdMode mode) {
  return 4 * s.rows() + (mode == CausalBwdMode::kAtomic ? 4 * s.elements() : 0);
}

inline KernelCost causal_attention_bwd_cost(const CausalAttentionShape& s, DType io, CausalBwdMode mode) {
  KernelCost c;
  c.flops = causal_attention_bwd_flops(s);
  c.bytes = 8.0 * static_cast<double>(s.elements()) * static_cast<double>(dtype_bytes(io))  // Q K V O dO in; dQ dK dV out
            + 3.0 * 4.0 * static_cast<double>(s.rows());                                    // lse in; D_i out and in
  if (mode == CausalBwdMode::kAtomic) c.bytes += 3.0 * 4.0 * static_cast<double>(s.elements());
  c.workspace_bytes = causal_attention_bwd_workspace_bytes(s, mode);
  return c;
}

}  // namespace seqscale
