// Megatron's vocab-parallel embedding and output layer + cross entropy (Shoeybi et al.
// 2019 s3; VocabParallelEmbedding, vocab_parallel_cross_entropy; the output projection
// untied, as GPT-NeoX) on the TP group: the TP collectives a step has outside its layers.
// T = s*b/sd tokens a rank holds (sd the Ulysses or LSS degree), es the dtype's bytes:
//   embedding (first virtual stage)
//     forward   the rows each rank looked up in its vocab slice are summed: an
//               all-reduce of T*h*es (Megatron-SP: a reduce-scatter to the sequence shard)
//     backward  plain TP nothing (the all-reduce's backward is the identity);
//               Megatron-SP all-gathers dX (T*h*es gathered)
//   loss (last virtual stage)
//     forward   Megatron-SP all-gathers the final norm's output (T*h*es); the loss
//               all-reduces 3 fp32 floats a token (max logit, sum of exp, target
//               logit: 4T bytes each)
//     backward  d(final norm output) all-reduced (Megatron-SP: reduce-scattered), T*h*es
// Nothing when tp == 1. Consumers: model/comm_volume.cc at the ends of the pipeline;
// comm/strategies/vocab_parallel.cc (plain and _sp) runs both on one stage.
#pragma once
#include "workloads/parallel/comm_ops.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale {

// Forward: at the start of the pass; backward: at its end.
void vocab_embedding(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape, Phase ph);
// Forward: at the end of the pass; backward: at its start.
void vocab_loss(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape, Phase ph);

}  // namespace seqscale
