// Causal fused attention on the GPU (GPT-NeoX / GenSLM self-attention), exact, forward and
// backward, without the S x S logits in memory. Parameters, layout and validation:
// causal_attention_params.h ([B, S, H, D] strided views; fp32 log-sum-exp [B, H, S]).
//
// Forward: tiled online softmax (FlashAttention-2) in fp32; key tiles entirely above the
// diagonal are never visited (about half the S^2 work), the diagonal tiles are masked
// elementwise; O and lse written. Backward by recomputation from lse with D_i = dO_i . O_i
// (a small pre-pass), FlashAttention-2's split: per key tile dK, dV over the query tiles at
// or below the diagonal; dQ either accumulated by fp32 atomics in the same pass
// (CausalBwdMode::kAtomic, the default) or by a second kernel per query tile
// (kDeterministic, bitwise repeatable).
//
// Kernels (CausalAttentionKernel):
//   tensor cores (causal_attention_tc_fwd.cu, causal_attention_tc_bwd.cu): WMMA 16x16x16
//     fp16/bf16 with fp32 accumulators, cp.async tile loads; the path the goals are about.
//   SIMT (causal_attention_simt.cu): one thread per row, fp32 math; fp16, bf16 and fp32.
//     For testing and as the fp32 path; always deterministic.
// Head sizes 64, 96, 128; any S >= 1; B * H * ceil(S / 64) up to 2^31 - 1 blocks.
// Every entry point validates first and throws std::invalid_argument naming the field.
#pragma once
#include <cuda_runtime.h>

#include "kernels/causal_attention/causal_attention_params.h"

namespace seqscale {

// O and lse from Q, K, V.
void causal_attention_fwd(const CausalAttentionParams& p, cudaStream_t stream);
// dQ, dK, dV (overwritten) from Q, K, V, the forward's O and lse, and dO; g.row_dot (and in
// atomic mode on tensor cores g.dq_accum) is workspace.
void causal_attention_bwd(const CausalAttentionParams& p, const CausalAttentionGrads& g, cudaStream_t stream);

// The kernel families, called by the two entry points above after validation.
void causal_attention_fwd_tc(const CausalAttentionParams& p, cudaStream_t stream);
void causal_attention_bwd_tc(const CausalAttentionParams& p, const CausalAttentionGrads& g, cudaStream_t stream);
void causal_attention_fwd_simt(const CausalAttentionParams& p, cudaStream_t stream);
void causal_attention_bwd_simt(const CausalAttentionParams& p, const CausalAttentionGrads& g, cudaStream_t stream);
// D_i = dO_i . O_i into g.row_dot (every backward starts with it).
void causal_attention_row_dot(const CausalAttentionParams& p, const CausalAttentionGrads& g, cudaStream_t stream);

}  // namespace seqscale
