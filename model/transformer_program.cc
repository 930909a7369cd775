#include "model/transformer_program.h"

#include <algorithm>
#include <cmath>

#include "model/comm_volume.h"
#include "model/memory.h"
#include "workloads/op_kinds.h"

namespace seqscale {

namespace {

std::int64_t to_bytes(double b) { return static_cast<std::int64_t>(std::llround(b)); }

}  // namespace

double layer_gemm_flops(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  const double s = static_cast<double>(shape.seq), b = static_cast<double>(shape.micro_batch);
  const double h = static_cast<double>(t.hidden), d = static_cast<double>(t.head_dim());
  const double kv = static_cast<double>(t.kv_heads > 0 ? t.kv_heads : t.heads);
  const double tu = static_cast<double>(p.tp) * p.seq_degree();
  const double mlp_flops = 4.0 * s * b * h * static_cast<double>(t.ffn_hidden) / tu;
  double flops = (2.0 * s * b * h * (h + 2.0 * kv * d) + 2.0 * s * b * h * h) / tu + mlp_flops;
  if (t.is_moe()) {
    const MoeLayers ml = moe_layers_of(t, p, shape);
    const double tokens = static_cast<double>(ml.tokens);
    const double load = static_cast<double>(t.moe_experts * moe_capacity(ml)) / tokens;
    const double router_flops = 2.0 * tokens * h * static_cast<double>(t.moe_experts);
    flops += ((load - 1.0) * mlp_flops + router_flops) / static_cast<double>(t.moe_every);
  }
  return flops;
}

StepProgram build_transformer_program(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  // Each term's size comes from the closed form; the events lay them out in step order. A
  // ClusterSpec with no context and no fragmentation leaves exactly the live bytes.
  const ClusterSpec bare;
  // The step-phase terms: mask=fp32 and mask=bool keep the same bool mask through the step
  // (fp32 only adds the batch-building transient, emitted below before any activation).
  Plan step_plan = p;
  if (step_plan.mask == MaskKind::kFp32) step_plan.mask = MaskKind::kBool;
  const MemoryBreakdown mb = transformer_memory(t, bare, step_plan, shape);
  StepProgram prog;
  const double s = static_cast<double>(shape.seq), b = static_cast<double>(shape.micro_batch);
  const double h = static_cast<double>(t.hidden), V = static_cast<double>(t.vocab);
  const double tu = static_cast<double>(p.tp) * p.seq_degree();
  const bool last = mb.stage == p.pp - 1;
  const std::int64_t layers_stage = t.layers / p.pp;
  const std::int64_t m = micro_batches(p, shape);

  // States and persistent extras.
  prog.alloc(MemoryKind::kParameters, to_bytes(mb[MemTerm::kParameters]), "parameters");
  prog.alloc(MemoryKind::kGradients, to_bytes(mb[MemTerm::kGradients]), "gradients");
  prog.alloc(MemoryKind::kOptimizerStates, to_bytes(mb[MemTerm::kOptimizer]), "optimizer_states");
  if (mb.host_bytes > 0) prog.alloc(MemoryKind::kOptimizerStates, to_bytes(mb.host_bytes), "offloaded_states", true);
  prog.alloc(MemoryKind::kParameters, to_bytes(mb[MemTerm::kPositionTable]), "position_table");
  prog.alloc(MemoryKind::kCommBuffers, to_bytes(mb[MemTerm::kCommBuffers]), "comm_buffers");
  // The causal mask: with mask=fp32, tril(ones) in fp32 then the bool kept (memory.cc).
  const double s2 = static_cast<double>(shape.seq) * static_cast<double>(shape.seq);
  if (p.mask == MaskKind::kFp32) {
    prog.alloc(MemoryKind::kWorkspace, to_bytes(4.0 * s2), "mask_ones_fp32");
    prog.alloc(MemoryKind::kWorkspace, to_bytes(4.0 * s2), "mask_tril_fp32");
    prog.free(MemoryKind::kWorkspace, to_bytes(4.0 * s2), "mask_ones_fp32");
  }
  if (p.mask != MaskKind::kNone) prog.alloc(MemoryKind::kActivations, to_bytes(s2), "attention_mask_bool");
  if (p.mask == MaskKind::kFp32) prog.free(MemoryKind::kWorkspace, to_bytes(4.0 * s2), "mask_tril_fp32");
  prog.alloc(MemoryKind::kWorkspace, to_bytes(mb[MemTerm::kZero3Gather]), "zero3_gathered_layer");
  prog.alloc(MemoryKind::kCommBuffers, to_bytes(mb[MemTerm::kSpGatherBuffers]), "sp_gather_buffers");

  // Stored activations: one chunk per (layer, micro-batch in flight) on the first stage.
  const double in_flight_total = mb[MemTerm::kActivations];
  const std::int64_t chunks = layers_stage * (mb.stage == 0 ? std::max<std::int64_t>(1, std::min<std::int64_t>(p.pp, m)) : 1);
  const std::int64_t per_chunk = to_bytes(in_flight_total / static_cast<double>(chunks));
  const std::int64_t remainder = to_bytes(in_flight_total) - per_chunk * chunks;

  // Forward: every layer of every micro-batch in flight stores its activations.
  const double gemm_flops = layer_gemm_flops(t, p, shape);
  const double attn_flops = 4.0 * s * s * b * h / tu * (p.attn == AttentionImpl::kFused ? 0.5 : 1.0);
  const double passes = p.recompute == Recompute::kFull ? 4.0 : 3.0;
  for (std::int64_t c = 0; c < chunks; ++c) {
    prog.alloc(MemoryKind::kActivations, per_chunk + (c == 0 ? remainder : 0), "layer_activations");
  }
  for (std::int64_t mb_i = 0; mb_i < m; ++mb_i) {
    for (std::int64_t l = 0; l < layers_stage; ++l) {
      for (double pass = 0; pass < passes; pass += 1.0) {
        ComputeOp g{op_kind::kGemm, {shape.seq, shape.micro_batch, t.hidden}, t.dtype, KernelCost{gemm_flops, 0, 0},
                    pass < 1 ? Phase::kForward : (pass < 3 ? Phase::kBackward : Phase::kRecompute), static_cast<std::int32_t>(l)};
        prog.add(g);
        ComputeOp a{p.attn == AttentionImpl::kFused ? op_kind::kAttentionFused : op_kind::kAttentionNaive, {shape.seq, t.heads},
                    t.dtype, KernelCost{attn_flops, 0, 0}, g.phase, static_cast<std::int32_t>(l)};
        prog.add(a);
      }
    }
    if (last && p.pp == 1) {
      prog.add(ComputeOp{op_kind::kGemm, {shape.seq, t.vocab}, t.dtype, KernelCost{3.0 * 2.0 * s * b * h * V / tu, 0, 0}, Phase::kForward, -1});
    }
  }
  // The step's collectives (model/comm_volume.h, the ops estimate() prices), after the
  // compute rather than interleaved with it: the replay tests need only the events' order,
  // and the per-group byte totals are what a backend's counters are checked against.
  for (const CommOp& op : transformer_step_comm(t, p, shape, mb.stage)) prog.add(op);
  // The loss (last stage) and then each layer's backward transient, never live together.
  if (mb[MemTerm::kLogits] > 0) {
    prog.alloc(MemoryKind::kWorkspace, to_bytes(mb[MemTerm::kLogits]), "logits");
    prog.free(MemoryKind::kWorkspace, to_bytes(mb[MemTerm::kLogits]), "logits");
  }
  const std::int64_t transient = to_bytes(mb[MemTerm::kBackwardWorkingSet] + mb[MemTerm::kAttentionScores]);
  for (std::int64_t c = 0; c < chunks; ++c) {
    prog.alloc(MemoryKind::kWorkspace, transient, "backward_working_set");
    prog.free(MemoryKind::kWorkspace, transient, "backward_working_set");
    prog.free(MemoryKind::kActivations, per_chunk + (c == chunks - 1 ? remainder : 0), "layer_activations");
  }
  return prog;
}

}  // namespace seqscale
