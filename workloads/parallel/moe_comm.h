// Mixture-of-experts expert parallelism (GShard, Lepikhin et al. 2020; DeepSpeed-MoE) on
// the expert group (kExpert, ep ranks carved from the data-parallel ones): a rank holds
// experts/ep experts; each token goes to its top-k experts through a capacity-padded
// all-to-all (dispatch), the experts run, and a second all-to-all (combine) brings the
// outputs back. Capacity C = ceil(capacity_factor * T * k / E) slots per expert and
// source rank (T the tokens a rank routes); padding makes every message E*C*H elements
// whatever the routing, so the bytes are exact. Per MoE layer and pass: dispatch and
// combine forward, their two mirrors backward.
// The router is a replicated dense weight: its gradient is reduced with the other dense
// ones over kData (data_parallel_comm.h); a rank's experts' gradients over the ranks
// holding the same experts (DeepSpeed's expert-data-parallel group).
// Consumers: model/comm_volume.cc around each MoE layer's experts (and model/memory.cc
// for the capacity); comm/strategies/moe.cc for its one layer.
#pragma once
#include "workloads/parallel/comm_ops.h"
#include "workloads/plan.h"
#include "workloads/specs.h"

namespace seqscale {

struct MoeShape {
  std::int64_t experts = 0, top_k = 1, hidden = 0;
  std::int64_t tokens = 0;  // a rank routes per micro-batch
  double capacity_factor = 1.25;
  std::int32_t ep = 1;
  DType dtype = DType::kBf16;
};

// The MoE layers of a checked plan: a rank routes its sequence shard of the micro-batch
// (TP ranks route the same tokens). All zero for a dense model.
MoeShape moe_shape(const TransformerSpec& t, const Plan& p, const RunShape& shape);
std::int64_t moe_capacity(const MoeShape& m);       // slots per expert and source rank
double moe_all_to_all_bytes(const MoeShape& m);     // what a rank sends in one of them

// One pass of one MoE layer: the dispatch and combine all-to-alls (backward: d(combine),
// then d(dispatch)). Nothing unless ep > 1.
void moe_dispatch_combine(CommOps& ops, const MoeShape& m, Phase ph);

}  // namespace seqscale
