// Shared setup of the "transformer_step" benchmark (CPU and CUDA bodies): parses the
// point (model, cluster, gpus, plan, seq, micro_batch), builds the model's StepProgram for
// the binding rank, declares its FLOPs, and records the model's predictions as metrics.
#pragma once
#include <cstdint>

#include "harness/bench/registry.h"
#include "workloads/step_program.h"

namespace seqscale {

struct TransformerStepSetup {
  StepProgram program;
  std::int64_t tokens = 0;  // seq * micro_batch: the GEMM M
  std::int64_t k = 0;       // hidden / (tp * ulysses): the GEMM K
};

TransformerStepSetup make_transformer_step(BenchState& s);

}  // namespace seqscale
