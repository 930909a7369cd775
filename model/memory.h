// Per-rank device memory of one training step, with a breakdown by term.
//
// Model states (Rajbhandari et al. 2020, "ZeRO", section 3 and 5): mixed-precision Adam
// holds 2 B fp16/bf16 parameters + 2 B gradients + 12 B fp32 master, momentum, variance
// = 16 B per parameter. Over N_d data-parallel ranks: ZeRO-1 4Ψ + 12Ψ/N_d, ZeRO-2
// 2Ψ + 14Ψ/N_d, ZeRO-3 16Ψ/N_d. Offload (ZeRO-Offload / ZeRO-Infinity) moves the
// optimizer states (and with ZeRO-2+ the gradients) or the parameters to the host.
//
// Activations (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large
// Transformer Models", Table 2): bytes per layer sbh(34 + 5as/h) unsharded; tensor parallel
// sbh(10 + 24/t + 5as/(ht)); with sequence parallel sbh/t (34 + 5as/h); selective recompute
// drops the 5as/h term; full recompute keeps the layer input (2sbh, /t with SP). The first
// pipeline stage holds min(p, m) micro-batches (1F1B), times 1 + (p-1)/(pv) interleaved.
// Fused (flash) attention removes the 5as/h term and keeps an fp32 log-sum-exp (4as bytes).
//
// LSS (sp=lss): every term is per segment (1/sp of the sequence), plus the all-gathered
// k and v of the whole sequence kept per layer for backward and their full-sequence
// gradients before the reduce-scatter (a transient). MoE layers (ep): a rank holds
// experts/ep experts (their states sharded by ZeRO over zero_shards/ep ranks); its
// experts see E*C token slots (C the capacity per expert) instead of T tokens, so the MLP
// activations scale by E*C/T, and the expert outputs and the fp32 router probabilities
// are kept for the combine's backward.
//
// Transient terms (live only at some point of the step; the peak takes the largest):
// the backward working set of one layer (with full recompute: the whole layer recomputed),
// materialized scores and their gradients, the logits and cross-entropy buffers on the
// last stage, the un-sharded all-gather buffers of Megatron-SP, the ZeRO-3 gathered layer.
// Persistent extras: the causal mask (bool s^2; built through an fp32 8s^2 transient when
// mask=fp32, which is its own phase before any activation), the learned position table's
// states, CUDA/NCCL context (cluster.context_bytes) and allocator fragmentation
// (cluster.allocator_overhead of live bytes).
#pragma once
#include <array>
#include <cstdint>
#include <string_view>

#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale {

// Bytes per parameter of mixed-precision Adam (ZeRO paper, K = 12).
inline constexpr double kParamBytes = 2.0;
inline constexpr double kGradBytes = 2.0;
inline constexpr double kOptimizerBytes = 12.0;

// Megatron's vocab-parallel cross entropy per logit element: bf16 logits (2), their fp32
// copy (4), fp32 exp/softmax kept for backward (4), fp32 max-subtracted temporary (4),
// fp32 gradient (4) = 18 B.
inline constexpr double kLogitBytesPerElement = 18.0;
// Megatron sequence parallelism all-gathers the layer input to the full sequence before
// the QKV and FC1 GEMMs and reduce-scatters their input gradient: a bf16 [s, b, h] gathered
// input plus its bf16 gradient are live at once, not divided by tp = 4 B per s*b*h element.
inline constexpr double kSpGatherBytesPerElement = 4.0;
// ZeRO-1/2 reduce and all-gather buckets (DeepSpeed reduce_bucket_size and
// allgather_bucket_size as Megatron-DeepSpeed long-sequence configs set them: 5e7 elements).
inline constexpr double kZeroBucketElements = 5e7;

struct ModelStates {
  double params = 0, grads = 0, optimizer = 0;  // on the device
  double host = 0;                              // offloaded to the host
  double device() const { return params + grads + optimizer; }
};
// States of `params` parameters sharded over `zero_shards` ranks at `zero` stage.
ModelStates model_state_bytes(double params, int zero, std::int64_t zero_shards, Offload offload);

enum class MemTerm : std::uint8_t {
  kParameters, kGradients, kOptimizer, kPositionTable, kActivations, kBackwardWorkingSet,
  kAttentionScores, kLogits, kSpGatherBuffers, kAttentionMask, kZero3Gather, kCommBuffers,
  kContext, kAllocatorOverhead, kCount
};
std::string_view mem_term_name(MemTerm t);

struct MemoryBreakdown {
  std::array<double, static_cast<int>(MemTerm::kCount)> bytes{};
  double host_bytes = 0;       // per rank, offloaded states
  std::int32_t stage = 0;      // the pipeline stage that binds (0 first, pp-1 last)
  double& operator[](MemTerm t) { return bytes[static_cast<int>(t)]; }
  double operator[](MemTerm t) const { return bytes[static_cast<int>(t)]; }
  double peak() const;
  MemTerm binding() const;     // the largest term
};

// Transformer parameter count (ANCHORS s4): 12Lh^2 (1 + 13/(12h) + (V + s)/(12Lh)), the s
// term only for a learned position table.
double transformer_params(const TransformerSpec& t, std::int64_t seq);
// Of which in MoE experts: moe_layers * experts * (2 h ffn + ffn + h); a MoE layer adds
// (experts - 1) expert MLPs and an h x experts router to the dense count.
double moe_expert_params(const TransformerSpec& t);
// Whether layer `layer` (counted from 0 within a stage, whose layer count `every` divides)
// is a MoE layer: the last of each group of moe_every, as GShard's every other layer.
inline bool is_moe_layer(const TransformerSpec& t, std::int64_t layer) {
  return t.is_moe() && (layer + 1) % t.moe_every == 0;
}

// Peak per-rank memory (max over pipeline stages) for a transformer step.
MemoryBreakdown transformer_memory(const TransformerSpec& t, const ClusterSpec& c, const Plan& p, const RunShape& s);

// Evoformer (AlphaFold2/OpenFold) parameters and peak per-rank memory; seq is N_res.
double evoformer_params(const EvoformerSpec& e);
MemoryBreakdown evoformer_memory(const EvoformerSpec& e, const ClusterSpec& c, const Plan& p, const RunShape& s);

// Training peak (forward + backward) of one gated Evoformer attention module over Bt rows
// of length L with c_in input channels, as OpenFold runs it under bf16 autocast: fp32
// residual input and LayerNorm output, bf16 q/k/v/gate projections and output, their
// gradients at the kernel's backward, and either the naive logits (16 B per element: the
// bf16 scores and biased scores, the fp32 softmax saved for backward and its bf16 copy for
// the PV matmul, the bf16 and fp32 gradients) or the fused kernel's fp32 log-sum-exp, fp32
// dQ accumulator and fp32 pair-bias gradient (DS4Sci EvoformerAttention).
double evoformer_attention_module_bytes(double bt, double len, double c_in, double heads, double head_dim,
                                        bool pair_bias, AttentionImpl impl);

// Bytes of one copy of an attention logit tensor: batch * n * heads * L^2 * dtype bytes.
// Published check (ANCHORS s1): the finetuning extra-MSA row attention is
// 5120 * 8 * 384^2 * 2 B = 12.08 GB.
double attention_logits_bytes(std::int64_t batch_n, std::int64_t heads, std::int64_t len, DType dtype);

}  // namespace seqscale
