// The StepProgram of one Evoformer training step on one rank (per-block checkpointing, DAP
// sharding): memory events laid out from the same terms evoformer_memory() prices in closed
// form; compute as every ComputeOp of the main and extra-MSA block programs
// (evoformer_block_program.h, what the harness runs) at 1/dap of the work, forward, the
// checkpointed forward again, then backward; and evoformer_step_comm's collectives.
// tests/model checks that replaying it gives the closed form's live peak and that pricing
// its ops gives estimate()'s compute time.
#pragma once
#include "workloads/plan.h"
#include "workloads/specs.h"
#include "workloads/step_program.h"

namespace seqscale {

StepProgram build_evoformer_program(const EvoformerSpec& e, const Plan& p, const RunShape& shape);

}  // namespace seqscale
