// LSS Transformer's segmented sequence parallelism (Wang et al. 2023, "Ultra-Long
// Sequence Distributed Transformer"; ANCHORS.md s3) on the segment ranks (kSequence):
// every layer runs on a 1/sp_degree segment of the sequence with replicated weights.
//   fused communication   per layer, k and v of every token travel in one all-gather
//                         ([k | v], es*s*b*2*kv_width gathered, kv_width the rank's
//                         kv_heads*head_dim/tp) forward and recompute, and their
//                         gradients in one reduce-scatter of the same size backward
//   double gradient       per step, the replicated weights' gradients are averaged over
//   averaging             the segments first (lss_grad_average), then over the replicas
//                         (the data-parallel reduction, data_parallel_comm.h)
// Consumers: model/comm_volume.cc inside each layer's attention block; comm/strategies/
// lss.cc for its one attention layer.
#pragma once
#include "workloads/parallel/comm_ops.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale {

double lss_kv_bytes(const TransformerSpec& t, const Plan& p, const RunShape& shape);

// One pass of one attention layer (nothing unless sp=lss with sp_degree > 1).
void lss_attention(CommOps& ops, const TransformerSpec& t, const Plan& p, const RunShape& shape, Phase ph);

// The first gradient average, over the segments: an all-reduce of `grad_bytes`.
void lss_grad_average(CommOps& ops, const Plan& p, double grad_bytes);

}  // namespace seqscale
