// The StepProgram of one transformer training step on one pipeline stage's rank, built
// from the same formulas estimate() uses in closed form: memory events in step order
// (states, persistent extras, stored activations per layer and micro-batch in flight, the
// loss, each layer's backward transient), compute ops with their declared FLOPs, and the
// step's CommOps (model/comm_volume.h: the same ops estimate() prices).
// tests/model checks that replaying it gives the closed form's live peak and FLOPs, so the
// harness executing this description and the model pricing it agree by construction.
#pragma once
#include "workloads/plan.h"
#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale {

// The rank of the binding pipeline stage (the one whose peak the closed form reports).
// The plan must be checked (dp derived).
StepProgram build_transformer_program(const TransformerSpec& t, const Plan& p, const RunShape& shape);

// One layer's forward GEMM FLOPs on a rank (QKV, output projection, MLP; /tp and /the
// sequence degree), averaged over a stage's layers: a MoE layer (one in moe_every) runs its
// MLP on E*C token slots instead of T tokens, plus the router. estimate() and the program
// both use it.
double layer_gemm_flops(const TransformerSpec& t, const Plan& p, const RunShape& shape);

}  // namespace seqscale
