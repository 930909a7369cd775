#include "model/transformer_program.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <variant>
#include <vector>

#include "layers/transformer_layer/transformer_layer_program.h"
#include "model/comm_volume.h"
#include "model/memory.h"
#include "workloads/op_kinds.h"

namespace seqscale {

namespace {

std::int64_t to_bytes(double b) { return static_cast<std::int64_t>(std::llround(b)); }

// One layer's ComputeOps on this rank, split into what a forward pass issues and what its
// backward issues (with full or selective recompute, the recomputed forward first).
struct LayerOps {
  std::vector<ComputeOp> forward, backward;
};

// The closed form's layer as ops (estimate()'s GEMMs and s^2 attention term), `scale`
// passes of it.
std::vector<ComputeOp> closed_form_layer_pass(const TransformerSpec& t, const Plan& p, const RunShape& shape,
                                              Phase phase, double scale) {
  const double s = static_cast<double>(shape.seq), b = static_cast<double>(shape.micro_batch);
  const double h = static_cast<double>(t.hidden), tu = static_cast<double>(p.tp) * p.seq_degree();
  const bool fused = p.attn == AttentionImpl::kFused;
  const double attn_flops = 4.0 * s * s * b * h / tu * (fused ? 0.5 : 1.0);
  return {ComputeOp{op_kind::kGemm, {shape.seq, shape.micro_batch, t.hidden}, t.dtype,
                    KernelCost{scale * layer_gemm_flops(t, p, shape), 0, 0}, phase, -1},
          ComputeOp{fused ? op_kind::kCausalAttention : op_kind::kAttentionNaive, {shape.seq, t.heads}, t.dtype,
                    KernelCost{scale * attn_flops, 0, 0}, phase, -1}};
}

// Plans the definition runs (tp, Megatron-SP, Ulysses; dense layers): the recorded layer
// program. LSS (the segment's attention over gathered keys), MoE layers (experts over E*C
// token slots) and KV heads replicated over tp (kv_heads < tp, which the plan allows and
// the definition's shard does not) are not in the definition yet: their layer is the closed
// form's GEMM and attention ops (layer_gemm_flops and the s^2 term), forward once, backward
// twice, and the forward again under full recompute.
bool definition_runs(const TransformerSpec& t, const Plan& p) {
  const std::int64_t kv = t.kv_heads > 0 ? t.kv_heads : t.heads, shards = static_cast<std::int64_t>(p.tp) * p.ulysses();
  return p.sp != SeqParallel::kLss && !t.is_moe() && t.heads % shards == 0 && kv % shards == 0 &&
         t.ffn_hidden % p.tp == 0;
}

LayerOps layer_ops(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  LayerOps out;
  if (!definition_runs(t, p)) {
    out.forward = closed_form_layer_pass(t, p, shape, Phase::kForward, 1.0);
    if (p.recompute == Recompute::kFull) out.backward = closed_form_layer_pass(t, p, shape, Phase::kRecompute, 1.0);
    for (ComputeOp& op : closed_form_layer_pass(t, p, shape, Phase::kBackward, 2.0)) out.backward.push_back(op);
    return out;
  }
  const TransformerLayerDims d = TransformerLayerDims::from(t, p, shape.seq, shape.micro_batch);
  const StepProgram layer = build_transformer_layer_program(d, p.mask, t.dtype);
  // The layer's ops start after the step's own tensors (x, the mask and its fill, dy, and
  // last dx): the step-level mask is built once a step, not once a layer. The layer's memory
  // events are the closed form's below, its CommOps transformer_step_comm's.
  bool in_layer = false;
  for (const StepOp& op : layer.ops) {
    if (const auto* e = std::get_if<MemoryEvent>(&op); e && e->tag == "d_layer_in") in_layer = true;
    const auto* c = std::get_if<ComputeOp>(&op);
    if (!c || !in_layer) continue;
    (c->phase == Phase::kForward ? out.forward : out.backward).push_back(*c);
  }
  return out;
}

void add_layer_ops(StepProgram& prog, const std::vector<ComputeOp>& ops, std::int32_t layer) {
  for (ComputeOp op : ops) {
    op.layer = layer;
    prog.add(std::move(op));
  }
}

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

namespace {

// The step's states and persistent extras (sizes from the closed form's terms), and the
// causal mask: with mask=fp32, tril(ones) in fp32 then the bool kept (memory.cc).
void add_state_events(StepProgram& prog, const MemoryBreakdown& mb, const Plan& p, const RunShape& shape) {
  prog.alloc(MemoryKind::kParameters, to_bytes(mb[MemTerm::kParameters]), "parameters");
  prog.alloc(MemoryKind::kGradients, to_bytes(mb[MemTerm::kGradients]), "gradients");
  prog.alloc(MemoryKind::kOptimizerStates, to_bytes(mb[MemTerm::kOptimizer]), "optimizer_states");
  if (mb.host_bytes > 0) prog.alloc(MemoryKind::kOptimizerStates, to_bytes(mb.host_bytes), "offloaded_states", true);
  prog.alloc(MemoryKind::kParameters, to_bytes(mb[MemTerm::kPositionTable]), "position_table");
  prog.alloc(MemoryKind::kCommBuffers, to_bytes(mb[MemTerm::kCommBuffers]), "comm_buffers");
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
}

// The loss on the last stage of a one-stage program (estimate() prices the same ops):
// Megatron's vocab-parallel output GEMM, forward and its two backward GEMMs, and the
// cross-entropy over the whole sequence's logits (18 B a logit, kLogitBytesPerElement).
// The definition's chunked loss (transformer_stack_def.h) is not what the closed form
// prices (layers/transformer_layer/README.md NOTE 5).
void add_loss_ops(StepProgram& prog, const TransformerSpec& t, const Plan& p, const RunShape& shape, std::int64_t m) {
  const double s = static_cast<double>(shape.seq), b = static_cast<double>(shape.micro_batch);
  const double h = static_cast<double>(t.hidden), V = static_cast<double>(t.vocab);
  const double tu = static_cast<double>(p.tp) * p.seq_degree();
  const double logits = s * b * V / tu, logit_flops = 2.0 * s * b * h * V / tu;
  const double logit_gemm_bytes = static_cast<double>(dtype_bytes(t.dtype)) * (logits + V * h / p.tp);
  for (Phase phase : {Phase::kForward, Phase::kBackward, Phase::kBackward}) {
    for (std::int64_t mb_i = 0; mb_i < m; ++mb_i) {
      prog.add(ComputeOp{op_kind::kGemm, {shape.seq, t.vocab}, t.dtype, KernelCost{logit_flops, logit_gemm_bytes, 0},
                         phase, -1});
    }
  }
  for (std::int64_t mb_i = 0; mb_i < m; ++mb_i) {
    prog.add(ComputeOp{op_kind::kCrossEntropy, {shape.seq, t.vocab}, t.dtype,
                       KernelCost{0, kLogitBytesPerElement * logits, 0}, Phase::kForward, -1});
  }
}

}  // namespace

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
  const bool last = mb.stage == p.pp - 1;
  const std::int64_t layers_stage = t.layers / p.pp;
  const std::int64_t m = micro_batches(p, shape);

  add_state_events(prog, mb, p, shape);

  // Stored activations: one chunk per (layer, micro-batch in flight) on the first stage.
  const double in_flight_total = mb[MemTerm::kActivations];
  const std::int64_t chunks = layers_stage * (mb.stage == 0 ? std::max<std::int64_t>(1, std::min<std::int64_t>(p.pp, m)) : 1);
  const std::int64_t per_chunk = to_bytes(in_flight_total / static_cast<double>(chunks));
  const std::int64_t remainder = to_bytes(in_flight_total) - per_chunk * chunks;

  // Compute: the layer as the definition runs it (layers/transformer_layer/
  // transformer_layer_def.h recorded: every GEMM, norm, causal or materialized attention
  // op, softmax and elementwise op of this rank's shard), forward for every layer of every
  // micro-batch, then the backward (recompute first, as the definition orders it).
  const LayerOps layer = layer_ops(t, p, shape);
  for (std::int64_t c = 0; c < chunks; ++c) {
    prog.alloc(MemoryKind::kActivations, per_chunk + (c == 0 ? remainder : 0), "layer_activations");
  }
  for (std::int64_t mb_i = 0; mb_i < m; ++mb_i) {
    for (std::int64_t l = 0; l < layers_stage; ++l) add_layer_ops(prog, layer.forward, static_cast<std::int32_t>(l));
  }
  if (last && p.pp == 1) add_loss_ops(prog, t, p, shape, m);
  for (std::int64_t mb_i = 0; mb_i < m; ++mb_i) {
    for (std::int64_t l = layers_stage - 1; l >= 0; --l) {
      add_layer_ops(prog, layer.backward, static_cast<std::int32_t>(l));
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
