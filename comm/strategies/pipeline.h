// The pipeline strategies' step as the cost model reads it: the tiny transformer, plan
// and shape that pipeline.cc's emit() hands workloads/parallel/pipeline_comm.h, so that
// tests/consistency can price the very step the strategies run with
// transformer_step_comm (one description, no mapping to keep).
#pragma once
#include "comm/strategies/strategy.h"

namespace seqscale::comm {

struct PipelineStep {
  TransformerSpec spec;  // pp * chunks * 2 layers of width 8, fp32
  Plan plan;             // the layout's tp, pp and dp; interleaved when chunks > 1
  RunShape shape;        // a [2, 8] boundary; 2 * pp micro-batches per replica
  int stage = 0;         // the rank's pipeline stage
};
PipelineStep pipeline_step(const RankLayout& layout, int rank, int chunks);

}  // namespace seqscale::comm
