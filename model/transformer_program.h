// The StepProgram of one transformer training step on one pipeline stage's rank, as the
// Evoformer's (model/evoformer_program.h) is built:
//   compute   recorded from the layer's definition (layers/transformer_layer/
//             transformer_layer_program.h): every GEMM, norm, causal_attention or
//             materialized-attention op, softmax and elementwise op the layer runs on this
//             rank's shard, per layer and micro-batch, forward then backward; the loss as
//             Megatron's vocab-parallel output GEMMs and cross-entropy. LSS and MoE layers,
//             which the definition does not run yet, are the closed form's GEMM and
//             attention ops;
//   memory    the closed form's terms (model/memory.h, the search's fast path) laid out in
//             step order: states, persistent extras, stored activations per layer and
//             micro-batch in flight, the loss, each layer's backward transient. So replaying
//             it gives transformer_memory()'s live peak; where the definition's own memory
//             differs, and why, is layers/transformer_layer/README.md's NOTE (tested term by
//             term in tests/layers/transformer_layer_program_test.cpp);
//   comm      the step's CommOps (model/comm_volume.h: the ops estimate() prices).
// Pricing it op by op is what `bench --source model` does for a layer point; estimate()
// prices the same step in closed form (model/estimate.cc transformer_time).
#pragma once
#include "workloads/plan.h"
#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale {

// The program of a rank of the binding pipeline stage (the stage whose peak the closed
// form reports). The plan must be checked (dp derived).
StepProgram build_transformer_program(const TransformerSpec& t, const Plan& p, const RunShape& shape);

// One layer's forward GEMM FLOPs on a rank (QKV, output projection, MLP; /tp and /the
// sequence degree), averaged over a stage's layers: a MoE layer (one in moe_every) runs its
// MLP on E*C token slots instead of T tokens, plus the router. estimate() and the program
// both use it.
double layer_gemm_flops(const TransformerSpec& t, const Plan& p, const RunShape& shape);

}  // namespace seqscale
