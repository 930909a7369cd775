// Causal attention on the CPU in fp32: the backend the `causal_attention_*` CPU benchmarks
// time and check against the double reference (causal_attention_ref.h), and the one the
// transformer layer's fp32 CPU executor calls. The same algorithm as the GPU kernels, one
// query row at a time: online softmax over key blocks of 64 (running max, rescaled fp32
// accumulator), the fp32 log-sum-exp saved; backward by recomputation from it with
// D_i = dO_i . O_i, dK and dV accumulated over query rows in order (deterministic).
// Same parameters and validation as the GPU launchers (io must be fp32; strides honoured).
// Not tuned: O(S^2 D) on one thread, for tiny shapes and the checked CPU path.
#pragma once
#include "kernels/causal_attention/causal_attention_params.h"

namespace seqscale {

void causal_attention_fwd_cpu(const CausalAttentionParams& p);
// Needs the forward's O and lse in p; writes dQ, dK, dV (overwritten, not accumulated) and
// g.row_dot. g.mode and g.dq_accum are ignored.
void causal_attention_bwd_cpu(const CausalAttentionParams& p, const CausalAttentionGrads& g);

}  // namespace seqscale
