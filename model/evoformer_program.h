// The StepProgram of one Evoformer training step on one rank (per-block checkpointing, DAP
// sharding): memory events laid out from the same terms evoformer_memory() prices in closed
// form, and one ComputeOp per attention call with the ANCHORS s1 FLOPs (forward
// 4 Bt H L^2 D; backward 8 naive or 10 fused; the checkpointed forward again before backward).
// tests/model checks that replaying it gives the closed form's live peak.
#pragma once
#include "model/plan.h"
#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale {

StepProgram build_evoformer_program(const EvoformerSpec& e, const Plan& p, const RunShape& shape);

}  // namespace seqscale
