// The communication of one training step on one rank: the strategies' emitters
// (workloads/parallel/*_comm.h, each the one definition of its collectives, with the
// formulas and their sources) composed in step order for a whole model. estimate()
// prices these ops and build_transformer_program() carries them; comm/strategies runs
// the same emitters' ops on tiny shapes and checks executed == emitted at run time
// (tests/consistency/), so what the model prices is what the strategies run.
//
// ---- transformer_step_comm(t, plan, shape, stage) ---------------------------------
// The passes of the stage's pipeline schedule in order (pipeline_comm.h: 1F1B, or
// interleaved with vpp chunks; with pp = 1 forward then backward per micro-batch). One
// pass of virtual stage k:
//   forward   ZeRO-3's parameter gathers (the dense weights, then this rank's experts)
//             the embedding (k = 0) or the boundary receive
//             per layer: the attention block (TP collectives around Ulysses' all-to-
//             alls or LSS's [k | v] gather) and the MLP block (TP collectives around a
//             MoE layer's dispatch and combine)
//             the loss (last k) or the boundary send
//   backward  ZeRO-3's gathers (and those of the recompute pass, recompute=full)
//             the loss backward (last k) or the boundary receive
//             per layer, last to first: the partitioned checkpoint's gather
//             (ckpt=partitioned), the recompute pass (recompute=full), the backward pass
//             (its MLP block, then its attention block)
//             the embedding backward (k = 0) or the boundary send
// then once per step, after the last backward: Megatron-SP's norm-gradient all-reduce
// (6h a layer: 2 LayerNorms' gamma and beta, 2 row-parallel output biases; + 2h for the
// final LayerNorm on the last stage), LSS's average over the segments, the data-parallel
// reduction of the dense weights over the zero_shards ranks and of a MoE rank's experts
// over the zero_shards/ep ranks holding the same experts (counted under kData).
// Gradients at kGradBytes and parameters at kParamBytes per parameter (model/memory.h).
//
// ---- evoformer_step_comm(e, plan, shape) ------------------------------------------
// Per micro-batch: ZeRO-3's forward gather; the extra-MSA blocks, that stack's exit, the
// main blocks, its exit (dap_comm.h); ZeRO-3's backward (and recompute) gathers; the main
// blocks' backward, each after its recompute forward when recompute != none, then the
// extra-MSA blocks'. Per step: DAP's weight-gradient all-reduce, then the data-parallel
// reduction over the zero_shards ranks.
#pragma once
#include <cstdint>
#include <vector>

#include "workloads/parallel/comm_ops.h"
#include "workloads/parallel/moe_comm.h"
#include "workloads/plan.h"
#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale {

// The CommOps of one training step, in step order, on a rank of pipeline stage `stage`
// (0..pp-1) of a checked plan (dp derived). group_size is set; crosses_nodes is left
// false (placement is the caller's).
std::vector<CommOp> transformer_step_comm(const TransformerSpec& t, const Plan& p, const RunShape& shape,
                                          std::int32_t stage);

// The CommOps of one Evoformer training step (main and extra-MSA blocks) on one rank of a
// checked plan with dap ranks; shape.seq is N_res (0: the spec's).
std::vector<CommOp> evoformer_step_comm(const EvoformerSpec& e, const Plan& p, const RunShape& shape);

// The MoE layers of a checked plan (memory.cc and transformer_program.cc read the tokens
// a rank routes and the capacity through these names).
using MoeLayers = MoeShape;
inline MoeLayers moe_layers_of(const TransformerSpec& t, const Plan& p, const RunShape& shape) {
  return moe_shape(t, p, shape);
}

}  // namespace seqscale
