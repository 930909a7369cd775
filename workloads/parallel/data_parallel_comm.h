// Data parallelism and ZeRO stages 0-3 (Rajbhandari et al. 2020) on the data-parallel
// group (kData): the collectives that keep replicated model states in step.
//   zero 0   per step, an all-reduce of the gradients
//   zero 1   per step, an all-reduce of the gradients, then (optimizer phase) an
//            all-gather of the updated parameters each rank's shard of Adam produced
//   zero 2   per step, a reduce-scatter of the gradients, then the all-gather
//   zero 3   per step, a reduce-scatter; and before each pass (forward, backward,
//            recompute) of each micro-batch an all-gather of the parameters
//            (s7.2.2: 2 Psi gathers + 1 Psi reduce-scatter = 1.5x data parallelism)
// Gradient reductions are overlappable (they run behind the last micro-batch's
// backward), as are ZeRO-3's prefetched gathers; the parameter all-gather after the
// optimizer is not. Offloading the optimizer (ZeRO-Offload, Ren et al. 2021) changes no
// collective: cpu_offload is ZeRO-2 on the wire.
// Consumers: model/comm_volume.cc (dense weights over zero_shards, a MoE rank's experts
// over zero_shards/ep); comm/strategies/zero.cc, cpu_offload.cc, and the per-step
// reductions of lss.cc and moe.cc.
#pragma once
#include "workloads/parallel/comm_ops.h"

namespace seqscale {

// Parameters replicated over a data-parallel group, and their bytes per parameter
// (mixed-precision Adam: 2 B parameters, 2 B gradients; the toy strategies: fp32).
struct ReplicatedStates {
  double params = 0;
  std::int32_t ranks = 1;  // the kData group that holds them
  double param_bytes = 0, grad_bytes = 0;
};

// ZeRO-3's gather of the parameters before one pass (nothing unless zero == 3).
void zero3_param_gather(CommOps& ops, const ReplicatedStates& s, int zero, Phase ph);

// The per-step reduction of the gradients and, for ZeRO-1/2, the gather of the updated
// parameters.
void data_parallel_grads(CommOps& ops, const ReplicatedStates& s, int zero);

}  // namespace seqscale
